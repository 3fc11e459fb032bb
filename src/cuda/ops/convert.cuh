// Convert: elementwise dtype conversion between f32, bf16 and f64 (and plain copies).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "difftx/cuda/common/scalar_type.h"

namespace difftx::cuda {

// dst (n) = src (n) converted to dst_type; bf16 results round to nearest even. Equal types
// (i32 included) copy. Floating types only otherwise.
void launch_convert(const void* src, ScalarType src_type, void* dst, ScalarType dst_type,
                    std::int64_t n, cudaStream_t stream);

}  // namespace difftx::cuda
