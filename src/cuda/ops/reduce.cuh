// Sum of squares of a device tensor (global gradient-norm clipping), returned on the host in
// f64. Deterministic: a fixed grid for a given length, f64 partial sums per block, then one
// block adds the partials in a fixed order.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "difftx/cuda/common/scalar_type.h"

namespace difftx::cuda {

std::size_t sum_of_squares_workspace_bytes(std::int64_t n);

// Sum over x (n) of x^2 in f64 (f32, bf16 or f64 elements). Synchronizes `stream`.
double launch_sum_of_squares(const void* x, ScalarType type, std::int64_t n, void* workspace,
                             std::size_t workspace_bytes, cudaStream_t stream);

}  // namespace difftx::cuda
