// RoPE at per-token positions (the engine's batches mix sequences at different positions), in
// place, with the arithmetic of rope.cuh: angle position * theta^(-2i/D) formed and reduced
// modulo 2 pi in f64, its sine and cosine taken in f32.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "scalar_type.h"

namespace difftx::cuda {

// x: n rows `row_stride` elements apart, each holding `heads` components of head_dim (f32 or
// bf16); row r is rotated by positions[r] (device i32).
void launch_rope_positions(void* x, ScalarType type, std::int64_t n, std::int64_t row_stride,
                           const std::int32_t* positions, int heads, int head_dim, double theta,
                           bool interleaved, cudaStream_t stream);

}  // namespace difftx::cuda
