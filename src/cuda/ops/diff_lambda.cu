// DIFF V1 lambda: kernels and launchers (see diff_lambda.cuh). One block; the two dot products
// are reduced in f32 across the block.
#include "device_util.cuh"
#include "diff_lambda.cuh"

namespace difftx::cuda {
namespace {

constexpr int kThreads = 128;

template <typename T>
__device__ __forceinline__ void lambda_dots(const T* lq1, const T* lk1, const T* lq2, const T* lk2,
                                            int d, float* red, float& dot1, float& dot2) {
  float s1 = 0.f, s2 = 0.f;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    s1 += convert_to<float>(lq1[c]) * convert_to<float>(lk1[c]);
    s2 += convert_to<float>(lq2[c]) * convert_to<float>(lk2[c]);
  }
  dot1 = block_sum(s1, red);
  dot2 = block_sum(s2, red);
}

template <typename T>
__global__ void diff_lambda_forward_kernel(const T* __restrict__ lq1, const T* __restrict__ lk1,
                                           const T* __restrict__ lq2, const T* __restrict__ lk2,
                                           int d, float lambda_init, float* __restrict__ lambda) {
  __shared__ float red[32];
  float dot1, dot2;
  lambda_dots(lq1, lk1, lq2, lk2, d, red, dot1, dot2);
  if (threadIdx.x == 0) *lambda = expf(dot1) - expf(dot2) + lambda_init;
}

template <typename T>
__global__ void diff_lambda_backward_kernel(const T* __restrict__ lq1, const T* __restrict__ lk1,
                                            const T* __restrict__ lq2, const T* __restrict__ lk2,
                                            int d, const float* __restrict__ dlambda,
                                            float* __restrict__ dlq1, float* __restrict__ dlk1,
                                            float* __restrict__ dlq2, float* __restrict__ dlk2) {
  __shared__ float red[32];
  float dot1, dot2;
  lambda_dots(lq1, lk1, lq2, lk2, d, red, dot1, dot2);
  const float g = *dlambda;
  const float g1 = g * expf(dot1), g2 = -g * expf(dot2);
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    dlq1[c] += g1 * convert_to<float>(lk1[c]);
    dlk1[c] += g1 * convert_to<float>(lq1[c]);
    dlq2[c] += g2 * convert_to<float>(lk2[c]);
    dlk2[c] += g2 * convert_to<float>(lq2[c]);
  }
}

}  // namespace

void launch_diff_lambda_forward(const void* lq1, const void* lk1, const void* lq2, const void* lk2,
                                ScalarType type, int d, double lambda_init, float* lambda,
                                cudaStream_t stream) {
  DIFFTX_DISPATCH_F32_BF16("diff_lambda_forward", type, T, {
    diff_lambda_forward_kernel<T><<<1, kThreads, 0, stream>>>(
        static_cast<const T*>(lq1), static_cast<const T*>(lk1), static_cast<const T*>(lq2),
        static_cast<const T*>(lk2), d, static_cast<float>(lambda_init), lambda);
  })
  DIFFTX_CUDA_CHECK_LAUNCH("diff_lambda_forward", "diff_lambda_forward_kernel");
}

void launch_diff_lambda_backward(const void* lq1, const void* lk1, const void* lq2, const void* lk2,
                                 ScalarType type, int d, const float* dlambda, float* dlq1,
                                 float* dlk1, float* dlq2, float* dlk2, cudaStream_t stream) {
  DIFFTX_DISPATCH_F32_BF16("diff_lambda_backward", type, T, {
    diff_lambda_backward_kernel<T><<<1, kThreads, 0, stream>>>(
        static_cast<const T*>(lq1), static_cast<const T*>(lk1), static_cast<const T*>(lq2),
        static_cast<const T*>(lk2), d, dlambda, dlq1, dlk1, dlq2, dlk2);
  })
  DIFFTX_CUDA_CHECK_LAUNCH("diff_lambda_backward", "diff_lambda_backward_kernel");
}

}  // namespace difftx::cuda
