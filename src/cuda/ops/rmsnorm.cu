// RMSNorm: kernels and launchers (see rmsnorm.cuh). Forward: one warp per row, two passes over
// the row (the second hits L1/L2). Backward: rows up to kWarpRowMaxC wide take one warp per row
// (no block barriers per row), each warp accumulating its own dweight partial in shared memory;
// wider rows take one block per row. Either way each block writes one partial of dweight, and
// the partials are reduced column-wise in a fixed order (deterministic).
#include "device_util.cuh"
#include "rmsnorm.cuh"

namespace difftx::cuda {
namespace {

constexpr int kForwardThreads = 256;        // 8 rows per block
constexpr int kBackwardBlocksMax = 256;     // block-per-row path
constexpr int kWarpRowWarps = 8;            // warp-per-row path: warps per block
constexpr int kWarpRowMaxC = 1536;          // 8 warps x 1536 floats = 48 KB of shared memory
constexpr int kWarpRowBlocksMax = 132 * 8;  // enough blocks to fill an H100 several times

template <typename W>
__device__ __forceinline__ float weight_at(const W* w, i64 j) {
  return w ? convert_to<float>(w[j]) : 1.f;
}

template <typename T, typename W>
__global__ void rmsnorm_forward_kernel(const T* __restrict__ x, const W* __restrict__ w,
                                       T* __restrict__ out, float* __restrict__ rstd, i64 n, i64 c,
                                       float eps, float scale) {
  const int lane = threadIdx.x & 31;
  const i64 row = blockIdx.x * i64(blockDim.x >> 5) + (threadIdx.x >> 5);
  if (row >= n) return;
  const T* xr = x + row * c;
  float ss = 0.f;
  for (i64 j = lane; j < c; j += 32) {
    const float v = convert_to<float>(xr[j]);
    ss += v * v;
  }
  ss = warp_sum(ss);
  const float r = 1.f / sqrtf(ss / float(c) + eps);
  if (lane == 0) rstd[row] = r;
  T* orow = out + row * c;
  for (i64 j = lane; j < c; j += 32) {
    orow[j] = convert_to<T>(scale * convert_to<float>(xr[j]) * r * weight_at(w, j));
  }
}

// dx = r * (g*w*s - x*r * mean_j(g*w*s*x*r)); dweight partial += g * x * r (times s at the end).
template <typename T, typename W>
__global__ void rmsnorm_backward_kernel(const T* __restrict__ x, const W* __restrict__ w,
                                        const float* __restrict__ rstd, const T* __restrict__ dout,
                                        T* __restrict__ dx, float* __restrict__ partial, i64 n,
                                        i64 c, float scale) {
  extern __shared__ float dw_acc[];  // (c) when partial != null
  __shared__ float red[32];
  if (partial) {
    for (i64 j = threadIdx.x; j < c; j += blockDim.x) dw_acc[j] = 0.f;
  }
  for (i64 row = blockIdx.x; row < n; row += gridDim.x) {
    const T* xr = x + row * c;
    const T* gr = dout + row * c;
    const float r = rstd[row];
    float dot = 0.f;
    for (i64 j = threadIdx.x; j < c; j += blockDim.x) {
      dot += convert_to<float>(gr[j]) * weight_at(w, j) * convert_to<float>(xr[j]);
    }
    const float mean = block_sum(dot, red) * scale * r / float(c);
    T* dxr = dx + row * c;
    for (i64 j = threadIdx.x; j < c; j += blockDim.x) {
      const float g = convert_to<float>(gr[j]);
      const float xhat = convert_to<float>(xr[j]) * r;
      dxr[j] = convert_to<T>(r * (g * weight_at(w, j) * scale - xhat * mean));
      if (partial) dw_acc[j] += g * xhat;
    }
  }
  if (partial) {
    for (i64 j = threadIdx.x; j < c; j += blockDim.x)
      partial[blockIdx.x * c + j] = dw_acc[j] * scale;
  }
}

// Warp-per-row backward: same math as above; warp w of the block accumulates dweight for the
// rows it handles in dw_acc[w * c ...], and the block sums its warps' partials in order.
template <typename T, typename W>
__global__ void rmsnorm_backward_warp_kernel(const T* __restrict__ x, const W* __restrict__ w,
                                             const float* __restrict__ rstd,
                                             const T* __restrict__ dout, T* __restrict__ dx,
                                             float* __restrict__ partial, i64 n, i64 c,
                                             float scale) {
  extern __shared__ float dw_acc[];  // (kWarpRowWarps, c) when partial != null
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* mine = dw_acc + i64(warp) * c;
  if (partial) {
    for (i64 j = lane; j < c; j += 32) mine[j] = 0.f;
  }
  for (i64 row = i64(blockIdx.x) * kWarpRowWarps + warp; row < n;
       row += i64(gridDim.x) * kWarpRowWarps) {
    const T* xr = x + row * c;
    const T* gr = dout + row * c;
    const float r = rstd[row];
    float dot = 0.f;
    for (i64 j = lane; j < c; j += 32) {
      dot += convert_to<float>(gr[j]) * weight_at(w, j) * convert_to<float>(xr[j]);
    }
    const float mean = warp_sum(dot) * scale * r / float(c);
    T* dxr = dx + row * c;
    for (i64 j = lane; j < c; j += 32) {
      const float g = convert_to<float>(gr[j]);
      const float xhat = convert_to<float>(xr[j]) * r;
      dxr[j] = convert_to<T>(r * (g * weight_at(w, j) * scale - xhat * mean));
      if (partial) mine[j] += g * xhat;
    }
  }
  if (partial) {
    __syncthreads();
    for (i64 j = threadIdx.x; j < c; j += blockDim.x) {
      float s = 0.f;
      for (int k = 0; k < kWarpRowWarps; ++k) s += dw_acc[i64(k) * c + j];
      partial[blockIdx.x * c + j] = s * scale;
    }
  }
}

// dweight (c) += sum over blocks b of partial (blocks, c), b ascending.
__global__ void rmsnorm_dweight_reduce_kernel(const float* __restrict__ partial, int blocks, i64 c,
                                              float* __restrict__ dweight) {
  for (i64 j = blockIdx.x * i64(blockDim.x) + threadIdx.x; j < c;
       j += i64(gridDim.x) * blockDim.x) {
    float s = 0.f;
    for (int b = 0; b < blocks; ++b) s += partial[b * c + j];
    dweight[j] += s;
  }
}

bool warp_per_row(std::int64_t c) {
  return c <= kWarpRowMaxC;
}

int backward_blocks(std::int64_t n, std::int64_t c) {
  if (warp_per_row(c)) {
    const std::int64_t b = (n + kWarpRowWarps - 1) / kWarpRowWarps;
    return static_cast<int>(b < 1 ? 1 : b > kWarpRowBlocksMax ? kWarpRowBlocksMax : b);
  }
  return static_cast<int>(n < kBackwardBlocksMax ? (n > 0 ? n : 1) : kBackwardBlocksMax);
}

int backward_threads(std::int64_t c) {
  std::int64_t t = (c + 31) / 32 * 32;
  return static_cast<int>(t < 32 ? 32 : t > 256 ? 256 : t);
}

}  // namespace

void launch_rmsnorm_forward(const void* x, ScalarType x_type, const void* weight,
                            ScalarType weight_type, double eps, double scale, void* out,
                            float* rstd, std::int64_t n, std::int64_t c, cudaStream_t stream) {
  if (n == 0) return;
  const unsigned blocks = grid_blocks(n, kForwardThreads / 32, 0x7fffffff);
  DIFFTX_DISPATCH_F32_BF16(
      "rmsnorm_forward", x_type, T, {DIFFTX_DISPATCH_F32_BF16("rmsnorm_forward", weight_type, W, {
        rmsnorm_forward_kernel<T, W><<<blocks, kForwardThreads, 0, stream>>>(
            static_cast<const T*>(x), static_cast<const W*>(weight), static_cast<T*>(out), rstd, n,
            c, static_cast<float>(eps), static_cast<float>(scale));
      })})
  DIFFTX_CUDA_CHECK_LAUNCH("rmsnorm_forward", "rmsnorm_forward_kernel");
}

std::size_t rmsnorm_backward_workspace_bytes(std::int64_t n, std::int64_t c, bool with_dweight) {
  return with_dweight ? std::size_t(backward_blocks(n, c)) * std::size_t(c) * sizeof(float) : 0;
}

void launch_rmsnorm_backward(const void* x, ScalarType x_type, const void* weight,
                             ScalarType weight_type, const float* rstd, double scale,
                             const void* dout, void* dx, float* dweight, std::int64_t n,
                             std::int64_t c, void* workspace, std::size_t workspace_bytes,
                             cudaStream_t stream) {
  if (n == 0) return;
  const int blocks = backward_blocks(n, c);
  const int threads = backward_threads(c);
  float* partial = nullptr;
  std::size_t smem = 0;
  if (dweight) {
    if (workspace_bytes < rmsnorm_backward_workspace_bytes(n, c, true)) {
      throw_op_error("rmsnorm_backward", "workspace too small");
    }
    partial = static_cast<float*>(workspace);
    smem = std::size_t(c) * sizeof(float);
  }
  if (warp_per_row(c)) {
    const std::size_t warp_smem =
        dweight ? std::size_t(kWarpRowWarps) * std::size_t(c) * sizeof(float) : 0;
    DIFFTX_DISPATCH_F32_BF16("rmsnorm_backward", x_type, T,
                             {DIFFTX_DISPATCH_F32_BF16("rmsnorm_backward", weight_type, W, {
                               rmsnorm_backward_warp_kernel<T, W>
                                   <<<blocks, kWarpRowWarps * 32, warp_smem, stream>>>(
                                       static_cast<const T*>(x), static_cast<const W*>(weight),
                                       rstd, static_cast<const T*>(dout), static_cast<T*>(dx),
                                       partial, n, c, static_cast<float>(scale));
                             })})
    DIFFTX_CUDA_CHECK_LAUNCH("rmsnorm_backward", "rmsnorm_backward_warp_kernel");
  } else {
    DIFFTX_DISPATCH_F32_BF16(
        "rmsnorm_backward", x_type, T,
        {DIFFTX_DISPATCH_F32_BF16("rmsnorm_backward", weight_type, W, {
          auto kernel = rmsnorm_backward_kernel<T, W>;
          if (smem > 48 * 1024) {
            int device = 0, optin = 0;
            DIFFTX_CUDA_CHECK("rmsnorm_backward", cudaGetDevice(&device));
            DIFFTX_CUDA_CHECK(
                "rmsnorm_backward",
                cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
            if (smem > std::size_t(optin)) {
              throw_op_error("rmsnorm_backward",
                             "rows too wide for the dweight accumulator in shared memory");
            }
            DIFFTX_CUDA_CHECK(
                "rmsnorm_backward",
                cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     static_cast<int>(smem)));
          }
          kernel<<<blocks, threads, smem, stream>>>(
              static_cast<const T*>(x), static_cast<const W*>(weight), rstd,
              static_cast<const T*>(dout), static_cast<T*>(dx), partial, n, c,
              static_cast<float>(scale));
        })})
    DIFFTX_CUDA_CHECK_LAUNCH("rmsnorm_backward", "rmsnorm_backward_kernel");
  }
  if (dweight) {
    constexpr int threads_r = 256;
    rmsnorm_dweight_reduce_kernel<<<grid_blocks(c, threads_r), threads_r, 0, stream>>>(
        partial, blocks, c, dweight);
    DIFFTX_CUDA_CHECK_LAUNCH("rmsnorm_backward", "rmsnorm_dweight_reduce_kernel");
  }
}

}  // namespace difftx::cuda
