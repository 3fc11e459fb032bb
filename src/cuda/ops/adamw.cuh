// AdamW on f32 master weights: bias-corrected moments, decoupled weight decay in PyTorch's
// order (p *= 1 - lr*wd, then p -= lr * m_hat / (sqrt(v_hat) + eps)).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace difftx::cuda {

// param, grad, m, v (n) f32; step is 1-based (>= 1). Bias corrections are computed in f64 on the
// host.
void launch_adamw(float* param, const float* grad, float* m, float* v, std::int64_t n, double lr,
                  double beta1, double beta2, double eps, double weight_decay, int step,
                  cudaStream_t stream);

}  // namespace difftx::cuda
