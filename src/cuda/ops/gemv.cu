// Decode-step matrix-vector products: kernel and launcher (see gemv.cuh). One warp per output
// column j (a weight row): its lanes stream the row in 16-byte chunks, four in flight, dot them
// with the n input rows (read through L1, shared by all warps) and reduce by shuffles; lane 0
// applies the epilogue for the n rows. Grid-stride over the columns of all weights.
#include <algorithm>

#include "common.cuh"
#include "gemv.cuh"
#include "pdl.cuh"

namespace difftx::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 4;

__device__ __forceinline__ float dot8(const uint4& a, const uint4& b) {
  const __nv_bfloat162* x = reinterpret_cast<const __nv_bfloat162*>(&a);
  const __nv_bfloat162* y = reinterpret_cast<const __nv_bfloat162*>(&b);
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 u = __bfloat1622float2(x[i]), v = __bfloat1622float2(y[i]);
    s = fmaf(u.x, v.x, s);
    s = fmaf(u.y, v.y, s);
  }
  return s;
}

// acc[r] += x_r . w over the row, for r < n.
template <int NR>
__device__ __forceinline__ void row_dot(const bf16* __restrict__ w, const bf16* __restrict__ x,
                                        i64 ldx, int n, int k, int lane, float* acc) {
  for (int k0 = lane * 8; k0 < k; k0 += 32 * 8 * kUnroll) {
    uint4 wv[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int kk = k0 + u * 256;
      wv[u] = kk < k ? __ldg(reinterpret_cast<const uint4*>(w + kk)) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int kk = k0 + u * 256;
      if (kk >= k) break;
#pragma unroll
      for (int r = 0; r < NR; ++r) {
        if (r < n) acc[r] += dot8(wv[u], __ldg(reinterpret_cast<const uint4*>(x + r * ldx + kk)));
      }
    }
  }
#pragma unroll
  for (int r = 0; r < NR; ++r) acc[r] = warp_sum(acc[r]);
}

template <int NR, GemvMode kMode, typename Out>
__global__ void __launch_bounds__(kThreads) gemv_kernel(const GemvArgs a) {
  pdl_wait();
  pdl_launch_dependents();
  const int lane = threadIdx.x & 31;
  const int warps = gridDim.x * (kThreads / 32);
  int total = 0;
  if constexpr (kMode == GemvMode::swiglu) {
    total = a.m[0];
  } else {
    for (int i = 0; i < a.count; ++i) total += a.m[i];
  }
  Out* out = static_cast<Out*>(a.out);
  for (int j = blockIdx.x * (kThreads / 32) + (threadIdx.x >> 5); j < total; j += warps) {
    float acc[NR];
#pragma unroll
    for (int r = 0; r < NR; ++r) acc[r] = 0.f;
    if constexpr (kMode == GemvMode::swiglu) {
      float up[NR];
#pragma unroll
      for (int r = 0; r < NR; ++r) up[r] = 0.f;
      row_dot<NR>(a.w[0] + i64(j) * a.k, a.x, a.ldx, a.n, a.k, lane, acc);
      row_dot<NR>(a.w[1] + i64(j) * a.k, a.x, a.ldx, a.n, a.k, lane, up);
      if (lane == 0) {
        for (int r = 0; r < a.n; ++r) {
          const float g = acc[r];
          out[r * a.ldo + j] = convert_to<Out>(g / (1.f + expf(-g)) * up[r]);
        }
      }
    } else {
      int i = 0, local = j;
      while (local >= a.m[i]) local -= a.m[i++];
      row_dot<NR>(a.w[i] + i64(local) * a.k, a.x, a.ldx, a.n, a.k, lane, acc);
      if (lane == 0) {
        for (int r = 0; r < a.n; ++r) {
          Out* o = out + r * a.ldo + j;
          if constexpr (kMode == GemvMode::accumulate) {
            *o = convert_to<Out>(convert_to<float>(*o) + acc[r]);
          } else {
            *o = convert_to<Out>(acc[r]);
          }
        }
      }
    }
  }
}

int sm_count() {
  static const int count = [] {
    int device = 0, n = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return 132;
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
      return 132;
    return n;
  }();
  return count;
}

template <int NR, GemvMode kMode>
void launch_rows(const GemvArgs& a, unsigned blocks, cudaStream_t stream) {
  cudaError_t status;
  if (a.out_type == ScalarType::f32) {
    status = launch_pdl(gemv_kernel<NR, kMode, float>, dim3(blocks), dim3(kThreads), 0, stream,
                        pdl_enabled(), a);
  } else {
    status = launch_pdl(gemv_kernel<NR, kMode, bf16>, dim3(blocks), dim3(kThreads), 0, stream,
                        pdl_enabled(), a);
  }
  if (status != cudaSuccess)
    throw_cuda_error("gemv", "cudaLaunchKernelEx(gemv_kernel)", status, __FILE__, __LINE__);
}

template <GemvMode kMode>
void launch_mode(const GemvArgs& a, unsigned blocks, cudaStream_t stream) {
  if (a.n == 1) {
    launch_rows<1, kMode>(a, blocks, stream);
  } else if (a.n == 2) {
    launch_rows<2, kMode>(a, blocks, stream);
  } else if (a.n <= 4) {
    launch_rows<4, kMode>(a, blocks, stream);
  } else {
    launch_rows<8, kMode>(a, blocks, stream);
  }
}

}  // namespace

bool gemv_supported(const GemvArgs& a) {
  if (a.n < 1 || a.n > kGemvMaxRows || a.k < 8 || a.k % 8 != 0 || a.ldx % 8 != 0) return false;
  if (a.count < 1 || a.count > kGemvMaxWeights || !aligned16(a.x)) return false;
  for (int i = 0; i < a.count; ++i) {
    if (!aligned16(a.w[i]) || a.m[i] < 1) return false;
  }
  return a.out_type == ScalarType::bf16 || a.out_type == ScalarType::f32;
}

void launch_gemv(const GemvArgs& a, cudaStream_t stream) {
  if (!gemv_supported(a)) throw_op_error("gemv", "operands the kernel does not take");
  int total = 0;
  for (int i = 0; i < a.count; ++i) total += a.m[i];
  if (a.mode == GemvMode::swiglu) total = a.m[0];
  const unsigned blocks =
      unsigned(std::min<i64>((total + kThreads / 32 - 1) / (kThreads / 32), i64(sm_count()) * 8));
  switch (a.mode) {
    case GemvMode::store:
      launch_mode<GemvMode::store>(a, blocks, stream);
      break;
    case GemvMode::accumulate:
      launch_mode<GemvMode::accumulate>(a, blocks, stream);
      break;
    case GemvMode::swiglu:
      launch_mode<GemvMode::swiglu>(a, blocks, stream);
      break;
  }
}

}  // namespace difftx::cuda
