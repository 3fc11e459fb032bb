// RoPE at per-token positions (the engine's batches mix sequences at different positions), in
// place, with the arithmetic of rope.cuh: angle position * theta^(-2i/D) formed and reduced
// modulo 2 pi in f64, its sine and cosine taken in f32.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "difftx/cuda/common/scalar_type.h"

namespace difftx::cuda {

// x: n rows `row_stride` elements apart, each holding `heads` components of head_dim (f32 or
// bf16); row r is rotated by positions[r] (device i32).
void launch_rope_positions(void* x, ScalarType type, std::int64_t n, std::int64_t row_stride,
                           const std::int32_t* positions, int heads, int head_dim, double theta,
                           bool interleaved, cudaStream_t stream);

// qkv: n rows `row_stride` elements apart, each [q (q_heads * head_dim) | k (k_heads *
// head_dim) | v (the rest)]: q and k rotated in place by positions[r], then k and v of row r
// copied to row slots[r] of k_pool (., k_heads * head_dim) / v_pool (., the v width); a negative
// slot skips the copies. One kernel for launch_rope_positions + launch_kv_cache_write.
void launch_rope_kv_cache_write(void* qkv, ScalarType type, std::int64_t n, std::int64_t row_stride,
                                const std::int32_t* positions, const std::int32_t* slots,
                                int q_heads, int k_heads, int head_dim, double theta,
                                bool interleaved, void* k_pool, void* v_pool, cudaStream_t stream);

}  // namespace difftx::cuda
