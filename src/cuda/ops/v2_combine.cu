// DIFF V2 combine: kernels and launchers (see v2_combine.cuh). Forward elementwise; backward one
// warp per (token, head), reducing dout . a_{2i+1} for the gate gradient.
#include "device_util.cuh"
#include "v2_combine.cuh"

namespace difftx::cuda {
namespace {

__device__ __forceinline__ float sigmoid(float g) {
  return 1.f / (1.f + expf(-g));
}

template <typename T>
__global__ void v2_combine_forward_kernel(const T* __restrict__ a, const T* __restrict__ gate,
                                          T* __restrict__ out, i64 n, int h, int d) {
  const i64 total = n * h * d;
  for (i64 idx = blockIdx.x * i64(blockDim.x) + threadIdx.x; idx < total;
       idx += i64(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(idx % d);
    const i64 head = idx / d;  // r * h + i
    const float sig = sigmoid(convert_to<float>(gate[head]));
    const i64 base = (2 * head) * d + c;  // a[r, 2i, c]: (r*2h + 2i)*d = 2*head*d
    out[idx] = convert_to<T>(convert_to<float>(a[base]) - sig * convert_to<float>(a[base + d]));
  }
}

template <typename T>
__global__ void v2_combine_backward_kernel(const T* __restrict__ a, const T* __restrict__ gate,
                                           const T* __restrict__ dout, T* __restrict__ da,
                                           T* __restrict__ dgate, i64 n, int h, int d) {
  const int lane = threadIdx.x & 31;
  const i64 head = blockIdx.x * i64(blockDim.x >> 5) + (threadIdx.x >> 5);  // r * h + i
  if (head >= n * h) return;
  const float sig = sigmoid(convert_to<float>(gate[head]));
  const T* a2 = a + (2 * head + 1) * d;
  const T* go = dout + head * d;
  T* da1 = da + 2 * head * d;
  T* da2 = da1 + d;
  float dsig = 0.f;
  for (int c = lane; c < d; c += 32) {
    const float g = convert_to<float>(go[c]);
    da1[c] = go[c];
    da2[c] = convert_to<T>(-sig * g);
    dsig -= g * convert_to<float>(a2[c]);
  }
  dsig = warp_sum(dsig);
  if (lane == 0) dgate[head] = convert_to<T>(dsig * sig * (1.f - sig));
}

}  // namespace

void launch_v2_combine_forward(const void* a, const void* gate_logits, void* out, ScalarType type,
                               std::int64_t n, int h, int d, cudaStream_t stream) {
  const i64 total = n * h * d;
  if (total == 0) return;
  constexpr int threads = 256;
  DIFFTX_DISPATCH_F32_BF16("v2_combine_forward", type, T, {
    v2_combine_forward_kernel<T><<<grid_blocks(total, threads * 4), threads, 0, stream>>>(
        static_cast<const T*>(a), static_cast<const T*>(gate_logits), static_cast<T*>(out), n, h,
        d);
  })
  DIFFTX_CUDA_CHECK_LAUNCH("v2_combine_forward", "v2_combine_forward_kernel");
}

void launch_v2_combine_backward(const void* a, const void* gate_logits, const void* dout, void* da,
                                void* dgate_logits, ScalarType type, std::int64_t n, int h, int d,
                                cudaStream_t stream) {
  const i64 heads = n * h;
  if (heads == 0) return;
  constexpr int threads = 256;
  DIFFTX_DISPATCH_F32_BF16("v2_combine_backward", type, T, {
    v2_combine_backward_kernel<T>
        <<<grid_blocks(heads, threads / 32, 0x7fffffff), threads, 0, stream>>>(
            static_cast<const T*>(a), static_cast<const T*>(gate_logits),
            static_cast<const T*>(dout), static_cast<T*>(da), static_cast<T*>(dgate_logits), n, h,
            d);
  })
  DIFFTX_CUDA_CHECK_LAUNCH("v2_combine_backward", "v2_combine_backward_kernel");
}

}  // namespace difftx::cuda
