// AdamW: kernel and launcher (see adamw.cuh).
#include <cmath>

#include "adamw.cuh"
#include "device_util.cuh"

namespace difftx::cuda {
namespace {

struct AdamWArgs {
  float lr, beta1, beta2, eps, weight_decay;
  float inv_bc1, inv_sqrt_bc2;  // 1 / (1 - beta1^t), 1 / sqrt(1 - beta2^t)
};

__global__ void adamw_kernel(float* __restrict__ param, const float* __restrict__ grad,
                             float* __restrict__ m, float* __restrict__ v, i64 n, AdamWArgs a) {
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < n;
       i += i64(gridDim.x) * blockDim.x) {
    const float g = grad[i];
    const float mi = fmaf(a.beta1, m[i], (1.f - a.beta1) * g);
    const float vi = fmaf(a.beta2, v[i], (1.f - a.beta2) * g * g);
    m[i] = mi;
    v[i] = vi;
    // m_hat / (sqrt(v_hat) + eps) with m_hat = m / bc1, sqrt(v_hat) = sqrt(v) / sqrt(bc2)
    const float update = (mi * a.inv_bc1) / (sqrtf(vi) * a.inv_sqrt_bc2 + a.eps);
    // p - lr*wd*p - lr*update: the small step formed first, so p is rounded once.
    const float p = param[i];
    param[i] = p - a.lr * fmaf(a.weight_decay, p, update);
  }
}

}  // namespace

void launch_adamw(float* param, const float* grad, float* m, float* v, std::int64_t n, double lr,
                  double beta1, double beta2, double eps, double weight_decay, int step,
                  cudaStream_t stream) {
  if (n == 0) return;
  AdamWArgs a{};
  a.lr = static_cast<float>(lr);
  a.beta1 = static_cast<float>(beta1);
  a.beta2 = static_cast<float>(beta2);
  a.eps = static_cast<float>(eps);
  a.weight_decay = static_cast<float>(weight_decay);
  a.inv_bc1 = static_cast<float>(1.0 / (1.0 - std::pow(beta1, step)));
  a.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(beta2, step)));
  constexpr int threads = 256;
  adamw_kernel<<<grid_blocks(n, threads * 4), threads, 0, stream>>>(param, grad, m, v, n, a);
  DIFFTX_CUDA_CHECK_LAUNCH("adamw_step", "adamw_kernel");
}

}  // namespace difftx::cuda
