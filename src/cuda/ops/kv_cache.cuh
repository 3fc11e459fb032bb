// The engine's KV pool ops: write token rows into pool slots (the step's new K/V), and gather
// a sequence's tokens through its block table into a contiguous cache for the flash attention
// kernels (chunked prefill). Raw pointers; element type f32 or bf16 (one for all operands).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "scalar_type.h"

namespace difftx::cuda {

// Row i of k (row stride k_stride) / v (v_stride) -> row slots[i] of k_pool (., k_width) /
// v_pool (., v_width); rows with a negative slot are skipped.
void launch_kv_cache_write(const void* k, std::int64_t k_stride, const void* v,
                           std::int64_t v_stride, const std::int32_t* slots, std::int64_t n,
                           std::int64_t k_width, std::int64_t v_width, void* k_pool, void* v_pool,
                           ScalarType type, cudaStream_t stream);

// k (n, k_width) / v (n, v_width) = the pools' rows of tokens 0..n-1, token t in slot
// block_table[t / block_size] * block_size + t % block_size.
void launch_kv_cache_gather(const void* k_pool, const void* v_pool, const std::int32_t* block_table,
                            int block_size, std::int64_t n, std::int64_t k_width,
                            std::int64_t v_width, void* k, void* v, ScalarType type,
                            cudaStream_t stream);

}  // namespace difftx::cuda
