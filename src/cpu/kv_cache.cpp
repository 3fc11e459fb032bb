// CPU KV pool ops of the engine: write token rows into pool slots, gather a sequence's tokens
// (through its block table) into a contiguous (tokens, width) cache for the flash attention ops.
#include <algorithm>

#include "cpu_ops.h"

namespace difftx::cpu {

template <typename T>
void kv_cache_write(const T* k, i64 k_stride, const T* v, i64 v_stride, const std::int32_t* slots,
                    i64 n, i64 k_width, i64 v_width, T* k_pool, T* v_pool) {
  for (i64 i = 0; i < n; ++i) {
    const i64 slot = slots[i];
    if (slot < 0) continue;
    std::copy_n(k + i * k_stride, k_width, k_pool + slot * k_width);
    std::copy_n(v + i * v_stride, v_width, v_pool + slot * v_width);
  }
}

template <typename T>
void kv_cache_gather(const T* k_pool, const T* v_pool, const std::int32_t* block_table,
                     int block_size, i64 n, i64 k_width, i64 v_width, T* k, T* v) {
  for (i64 t = 0; t < n; ++t) {
    const i64 slot = i64(block_table[t / block_size]) * block_size + t % block_size;
    std::copy_n(k_pool + slot * k_width, k_width, k + t * k_width);
    std::copy_n(v_pool + slot * v_width, v_width, v + t * v_width);
  }
}

template void kv_cache_write<float>(const float*, i64, const float*, i64, const std::int32_t*, i64,
                                    i64, i64, float*, float*);
template void kv_cache_write<double>(const double*, i64, const double*, i64, const std::int32_t*,
                                     i64, i64, i64, double*, double*);
template void kv_cache_gather<float>(const float*, const float*, const std::int32_t*, int, i64, i64,
                                     i64, float*, float*);
template void kv_cache_gather<double>(const double*, const double*, const std::int32_t*, int, i64,
                                      i64, i64, double*, double*);

}  // namespace difftx::cpu
