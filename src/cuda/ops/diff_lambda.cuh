// DIFF V1 lambda re-parameterisation: lambda = exp(lq1 . lk1) - exp(lq2 . lk2) + lambda_init,
// and its backward, computed on the device so lambda never visits the host.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "difftx/cuda/common/scalar_type.h"

namespace difftx::cuda {

// lq1, lk1, lq2, lk2 (d) of `type` (f32 or bf16); lambda (1) f32 =.
void launch_diff_lambda_forward(const void* lq1, const void* lk1, const void* lq2, const void* lk2,
                                ScalarType type, int d, double lambda_init, float* lambda,
                                cudaStream_t stream);
// dlambda (1) f32 on the device; dlq1, dlk1, dlq2, dlk2 (d) f32 +=.
void launch_diff_lambda_backward(const void* lq1, const void* lk1, const void* lq2, const void* lk2,
                                 ScalarType type, int d, const float* dlambda, float* dlq1,
                                 float* dlk1, float* dlq2, float* dlk2, cudaStream_t stream);

}  // namespace difftx::cuda
