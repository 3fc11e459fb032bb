// KV pool write and gather: kernels and launchers (see kv_cache.cuh). One block per token row,
// 16-byte vector copies when every row start is 16-byte aligned, element copies otherwise.
#include "device_util.cuh"
#include "kv_cache.cuh"
#include "pdl.cuh"

namespace difftx::cuda {
namespace {

// Copies `width` elements from src to dst with the block's threads.
template <typename T, bool kVector>
__device__ __forceinline__ void copy_row(const T* __restrict__ src, T* __restrict__ dst,
                                         i64 width) {
  if constexpr (kVector) {
    using P = Pack<T>;
    const i64 packs = width / P::size;
    for (i64 i = threadIdx.x; i < packs; i += blockDim.x) {
      reinterpret_cast<P*>(dst)[i] = reinterpret_cast<const P*>(src)[i];
    }
  } else {
    for (i64 i = threadIdx.x; i < width; i += blockDim.x) dst[i] = src[i];
  }
}

template <typename T, bool kVector>
__global__ void kv_write_kernel(const T* __restrict__ k, i64 k_stride, const T* __restrict__ v,
                                i64 v_stride, const std::int32_t* __restrict__ slots, i64 k_width,
                                i64 v_width, T* __restrict__ k_pool, T* __restrict__ v_pool) {
  pdl_wait();
  pdl_launch_dependents();
  const i64 row = blockIdx.x;
  const i64 slot = slots[row];
  if (slot < 0) return;
  copy_row<T, kVector>(k + row * k_stride, k_pool + slot * k_width, k_width);
  copy_row<T, kVector>(v + row * v_stride, v_pool + slot * v_width, v_width);
}

template <typename T, bool kVector>
__global__ void kv_gather_kernel(const T* __restrict__ k_pool, const T* __restrict__ v_pool,
                                 const std::int32_t* __restrict__ table, int block_size,
                                 i64 k_width, i64 v_width, T* __restrict__ k, T* __restrict__ v) {
  pdl_wait();
  pdl_launch_dependents();
  const i64 t = blockIdx.x;
  const i64 slot = i64(table[t / block_size]) * block_size + t % block_size;
  copy_row<T, kVector>(k_pool + slot * k_width, k + t * k_width, k_width);
  copy_row<T, kVector>(v_pool + slot * v_width, v + t * v_width, v_width);
}

// Whether rows of these widths / strides at these bases all start 16-byte aligned.
bool vector_ok(std::size_t elem, std::initializer_list<const void*> ptrs,
               std::initializer_list<i64> counts) {
  for (const void* p : ptrs) {
    if (!aligned16(p)) return false;
  }
  for (i64 c : counts) {
    if ((c * i64(elem)) % 16 != 0) return false;
  }
  return true;
}

int threads_for(i64 k_width, i64 v_width, int per_thread) {
  const i64 w = (k_width > v_width ? k_width : v_width) / per_thread;
  return w >= 256 ? 256 : w >= 128 ? 128 : w >= 64 ? 64 : 32;
}

}  // namespace

void launch_kv_cache_write(const void* k, std::int64_t k_stride, const void* v,
                           std::int64_t v_stride, const std::int32_t* slots, std::int64_t n,
                           std::int64_t k_width, std::int64_t v_width, void* k_pool, void* v_pool,
                           ScalarType type, cudaStream_t stream) {
  if (n == 0) return;
  DIFFTX_DISPATCH_F32_BF16("kv_cache_write", type, T, {
    const bool vec =
        vector_ok(sizeof(T), {k, v, k_pool, v_pool}, {k_stride, v_stride, k_width, v_width});
    const int threads = threads_for(k_width, v_width, vec ? Pack<T>::size : 1);
    if (vec) {
      DIFFTX_CUDA_CHECK("kv_cache_write",
                        launch_pdl(kv_write_kernel<T, true>, dim3(unsigned(n)), dim3(threads), 0,
                                   stream, pdl_enabled("kv_write"), static_cast<const T*>(k),
                                   k_stride, static_cast<const T*>(v), v_stride, slots, k_width,
                                   v_width, static_cast<T*>(k_pool), static_cast<T*>(v_pool)));
    } else {
      DIFFTX_CUDA_CHECK("kv_cache_write",
                        launch_pdl(kv_write_kernel<T, false>, dim3(unsigned(n)), dim3(threads), 0,
                                   stream, pdl_enabled("kv_write"), static_cast<const T*>(k),
                                   k_stride, static_cast<const T*>(v), v_stride, slots, k_width,
                                   v_width, static_cast<T*>(k_pool), static_cast<T*>(v_pool)));
    }
  })
}

void launch_kv_cache_gather(const void* k_pool, const void* v_pool, const std::int32_t* block_table,
                            int block_size, std::int64_t n, std::int64_t k_width,
                            std::int64_t v_width, void* k, void* v, ScalarType type,
                            cudaStream_t stream) {
  if (n == 0) return;
  DIFFTX_DISPATCH_F32_BF16("kv_cache_gather", type, T, {
    const bool vec = vector_ok(sizeof(T), {k, v, k_pool, v_pool}, {k_width, v_width});
    const int threads = threads_for(k_width, v_width, vec ? Pack<T>::size : 1);
    if (vec) {
      DIFFTX_CUDA_CHECK("kv_cache_gather",
                        launch_pdl(kv_gather_kernel<T, true>, dim3(unsigned(n)), dim3(threads), 0,
                                   stream, pdl_enabled("kv_write"), static_cast<const T*>(k_pool),
                                   static_cast<const T*>(v_pool), block_table, block_size, k_width,
                                   v_width, static_cast<T*>(k), static_cast<T*>(v)));
    } else {
      DIFFTX_CUDA_CHECK("kv_cache_gather",
                        launch_pdl(kv_gather_kernel<T, false>, dim3(unsigned(n)), dim3(threads), 0,
                                   stream, pdl_enabled("kv_write"), static_cast<const T*>(k_pool),
                                   static_cast<const T*>(v_pool), block_table, block_size, k_width,
                                   v_width, static_cast<T*>(k), static_cast<T*>(v)));
    }
  })
}

}  // namespace difftx::cuda
