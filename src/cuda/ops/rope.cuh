// Rotary position embedding, in place, GPT-J interleaved pairs (2i, 2i+1) or NeoX half-split
// pairs (i, i + D/2); frequency theta^(-2i/D), position pos_offset + t.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "difftx/cuda/common/scalar_type.h"

namespace difftx::cuda {

// x viewed as (batch, seq, heads, head_dim) with `row_stride` elements between tokens; f32 or
// bf16. inverse rotates by -angle (the backward). The angle pos * inv_freq is formed and
// reduced modulo 2 pi in f64, then its sine and cosine are taken in f32.
void launch_rope(void* x, ScalarType type, int batch, int seq, int heads, int head_dim,
                 std::int64_t row_stride, int pos_offset, double theta, bool interleaved,
                 bool inverse, cudaStream_t stream);

}  // namespace difftx::cuda
