// Scale: x *= factor elementwise (gradient clipping), f32 / bf16 / f64.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "difftx/cuda/common/scalar_type.h"

namespace difftx::cuda {

// x (n) *= factor, computed in f32 (f64 for f64 tensors).
void launch_scale(void* x, ScalarType type, std::int64_t n, double factor, cudaStream_t stream);

}  // namespace difftx::cuda
