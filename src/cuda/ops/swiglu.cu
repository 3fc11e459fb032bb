// SwiGLU: kernels and launchers (see swiglu.cuh).
#include "device_util.cuh"
#include "swiglu.cuh"

namespace difftx::cuda {
namespace {

__device__ __forceinline__ float sigmoid(float g) {
  return 1.f / (1.f + expf(-g));
}

template <typename T>
__global__ void swiglu_forward_kernel(const T* __restrict__ gate, const T* __restrict__ up,
                                      T* __restrict__ out, i64 n) {
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < n;
       i += i64(gridDim.x) * blockDim.x) {
    const float g = convert_to<float>(gate[i]);
    out[i] = convert_to<T>(g * sigmoid(g) * convert_to<float>(up[i]));
  }
}

// No __restrict__: the gradients may overwrite the inputs in place.
template <typename T>
__global__ void swiglu_backward_kernel(const T* gate, const T* up, const T* dout, T* dgate, T* dup,
                                       i64 n) {
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < n;
       i += i64(gridDim.x) * blockDim.x) {
    const float g = convert_to<float>(gate[i]);
    const float u = convert_to<float>(up[i]);
    const float d = convert_to<float>(dout[i]);
    const float sig = sigmoid(g);
    dgate[i] = convert_to<T>(d * u * sig * (1.f + g * (1.f - sig)));
    dup[i] = convert_to<T>(d * g * sig);
  }
}

}  // namespace

void launch_swiglu_forward(const void* gate, const void* up, void* out, ScalarType type,
                           std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  constexpr int threads = 256;
  DIFFTX_DISPATCH_F32_BF16("swiglu_forward", type, T, {
    swiglu_forward_kernel<T><<<grid_blocks(n, threads * 4), threads, 0, stream>>>(
        static_cast<const T*>(gate), static_cast<const T*>(up), static_cast<T*>(out), n);
  })
  DIFFTX_CUDA_CHECK_LAUNCH("swiglu_forward", "swiglu_forward_kernel");
}

void launch_swiglu_backward(const void* gate, const void* up, const void* dout, void* dgate,
                            void* dup, ScalarType type, std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  constexpr int threads = 256;
  DIFFTX_DISPATCH_F32_BF16("swiglu_backward", type, T, {
    swiglu_backward_kernel<T><<<grid_blocks(n, threads * 4), threads, 0, stream>>>(
        static_cast<const T*>(gate), static_cast<const T*>(up), static_cast<const T*>(dout),
        static_cast<T*>(dgate), static_cast<T*>(dup), n);
  })
  DIFFTX_CUDA_CHECK_LAUNCH("swiglu_backward", "swiglu_backward_kernel");
}

}  // namespace difftx::cuda
