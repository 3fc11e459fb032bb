// Add: out = a + b elementwise (out may be a, for add_inplace), f32 / bf16 / f64.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "difftx/cuda/common/scalar_type.h"

namespace difftx::cuda {

// out (n) = a (n) + b (n), all of `type`; computed in f32 (f64 for f64). out may alias a or b.
void launch_add(const void* a, const void* b, void* out, ScalarType type, std::int64_t n,
                cudaStream_t stream);

}  // namespace difftx::cuda
