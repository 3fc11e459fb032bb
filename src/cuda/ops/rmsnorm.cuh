// RMSNorm over the last dim C: out = scale * x * rstd * weight, rstd = 1/sqrt(mean(x^2) + eps),
// and its backward (dx =, dweight += through per-block partial sums reduced in a fixed order,
// so results are deterministic).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "difftx/cuda/common/scalar_type.h"

namespace difftx::cuda {

// x, out (n, c) of x_type (f32 or bf16); weight (c) of weight_type (f32 or bf16) or null;
// rstd (n) f32.
void launch_rmsnorm_forward(const void* x, ScalarType x_type, const void* weight,
                            ScalarType weight_type, double eps, double scale, void* out,
                            float* rstd, std::int64_t n, std::int64_t c, cudaStream_t stream);

// Device scratch bytes for the dweight partial sums (0 when dweight is not wanted).
std::size_t rmsnorm_backward_workspace_bytes(std::int64_t n, std::int64_t c, bool with_dweight);

// x, dout, dx (n, c) of x_type; weight as in the forward; rstd (n) f32; dweight (c) f32 += or
// null (then workspace may be null).
void launch_rmsnorm_backward(const void* x, ScalarType x_type, const void* weight,
                             ScalarType weight_type, const float* rstd, double scale,
                             const void* dout, void* dx, float* dweight, std::int64_t n,
                             std::int64_t c, void* workspace, std::size_t workspace_bytes,
                             cudaStream_t stream);

}  // namespace difftx::cuda
