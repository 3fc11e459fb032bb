// Fill: every element of a device buffer set to one value (f32, bf16, f64 or i32).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "difftx/cuda/common/scalar_type.h"

namespace difftx::cuda {

// p (n) = value, converted to the element type (round to nearest even for bf16).
void launch_fill(void* p, ScalarType type, std::int64_t n, double value, cudaStream_t stream);

}  // namespace difftx::cuda
