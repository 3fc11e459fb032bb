// RoPE at per-token positions, alone and fused with the KV pool write: kernels and launchers (see
// rope_positions.cuh). One thread per (row, head, frequency): a decode step has one row, so the
// heads give the parallelism (a loop over them made each thread wait on one dependent load per
// head: 12 us for 24 heads).
#include <cmath>

#include "device_util.cuh"
#include "pdl.cuh"
#include "rope_math.cuh"
#include "rope_positions.cuh"

namespace difftx::cuda {
namespace {

// Rotates pair i of the head_dim-sized component at v by the row's position.
template <typename T>
__device__ __forceinline__ void rotate_pair(T* v, int i, int head_dim, std::int32_t position,
                                            double log_theta, bool interleaved) {
  const int i0 = rope_first(i, head_dim, interleaved), i1 = rope_second(i, head_dim, interleaved);
  float x0 = convert_to<float>(v[i0]), x1 = convert_to<float>(v[i1]);
  rope_rotate(x0, x1, i, head_dim, position, log_theta);
  v[i0] = convert_to<T>(x0);
  v[i1] = convert_to<T>(x1);
}

template <typename T>
__global__ void rope_positions_kernel(T* __restrict__ x, i64 n, i64 row_stride,
                                      const std::int32_t* __restrict__ positions, int heads,
                                      int head_dim, double log_theta, bool interleaved) {
  pdl_wait();
  pdl_launch_dependents();
  const int half = head_dim / 2;
  const i64 per_row = i64(heads) * half;
  const i64 total = n * per_row;
  for (i64 idx = blockIdx.x * i64(blockDim.x) + threadIdx.x; idx < total;
       idx += i64(gridDim.x) * blockDim.x) {
    const i64 row = idx / per_row;
    const int rest = static_cast<int>(idx - row * per_row);
    const int h = rest / half, i = rest % half;
    rotate_pair(x + row * row_stride + i64(h) * head_dim, i, head_dim, positions[row], log_theta,
                interleaved);
  }
}

// RoPE on the q and k components of each row, then its k and v written to the pools: a thread
// per (row, item), items being the rotation pairs of q and k (a k pair also goes to the pool)
// and the v row's copy units (kVecV: 16-byte packs, else elements). A negative slot skips the
// pool writes of its row.
template <typename T, bool kVecV>
__global__ void rope_kv_write_kernel(T* __restrict__ qkv, i64 n, i64 row_stride,
                                     const std::int32_t* __restrict__ positions,
                                     const std::int32_t* __restrict__ slots, int q_heads,
                                     int k_heads, int head_dim, double log_theta, bool interleaved,
                                     i64 v_width, T* __restrict__ k_pool, T* __restrict__ v_pool) {
  pdl_wait();
  pdl_launch_dependents();
  const int half = head_dim / 2;
  const i64 pairs = i64(q_heads + k_heads) * half;
  const i64 v_units = kVecV ? v_width / Pack<T>::size : v_width;
  const i64 per_row = pairs + v_units;
  const i64 total = n * per_row;
  const i64 k_width = i64(k_heads) * head_dim;
  for (i64 idx = blockIdx.x * i64(blockDim.x) + threadIdx.x; idx < total;
       idx += i64(gridDim.x) * blockDim.x) {
    const i64 row = idx / per_row;
    const i64 rest = idx - row * per_row;
    const i64 slot = slots[row];
    T* x = qkv + row * row_stride;
    if (rest < pairs) {
      const int h = static_cast<int>(rest / half), i = static_cast<int>(rest % half);
      T* comp = x + i64(h) * head_dim;
      rotate_pair(comp, i, head_dim, positions[row], log_theta, interleaved);
      if (h >= q_heads && slot >= 0) {  // a k pair: to the pool too
        const int i0 = rope_first(i, head_dim, interleaved);
        const int i1 = rope_second(i, head_dim, interleaved);
        T* dst = k_pool + slot * k_width + i64(h - q_heads) * head_dim;
        dst[i0] = comp[i0];
        dst[i1] = comp[i1];
      }
    } else if (slot >= 0) {
      const i64 u = rest - pairs;
      const T* v = x + pairs * 2;
      if constexpr (kVecV) {
        reinterpret_cast<Pack<T>*>(v_pool + slot * v_width)[u] =
            reinterpret_cast<const Pack<T>*>(v)[u];
      } else {
        v_pool[slot * v_width + u] = v[u];
      }
    }
  }
}

}  // namespace

void launch_rope_positions(void* x, ScalarType type, std::int64_t n, std::int64_t row_stride,
                           const std::int32_t* positions, int heads, int head_dim, double theta,
                           bool interleaved, cudaStream_t stream) {
  const i64 total = n * heads * (head_dim / 2);
  if (total == 0) return;
  constexpr int threads = 128;
  const double log_theta = std::log(theta);
  DIFFTX_DISPATCH_F32_BF16("rope_positions", type, T, {
    DIFFTX_CUDA_CHECK(
        "rope_positions",
        launch_pdl(rope_positions_kernel<T>, dim3(grid_blocks(total, threads)), dim3(threads), 0,
                   stream, pdl_enabled("rope"), static_cast<T*>(x), n, row_stride, positions, heads,
                   head_dim, log_theta, interleaved));
  })
}

void launch_rope_kv_cache_write(void* qkv, ScalarType type, std::int64_t n, std::int64_t row_stride,
                                const std::int32_t* positions, const std::int32_t* slots,
                                int q_heads, int k_heads, int head_dim, double theta,
                                bool interleaved, void* k_pool, void* v_pool, cudaStream_t stream) {
  if (n == 0) return;
  const i64 v_width = row_stride - i64(q_heads + k_heads) * head_dim;
  constexpr int threads = 128;
  const double log_theta = std::log(theta);
  DIFFTX_DISPATCH_F32_BF16("rope_kv_cache_write", type, T, {
    T* x = static_cast<T*>(qkv);
    const bool vec = aligned16(x + (row_stride - v_width)) && aligned16(v_pool) &&
                     (row_stride * i64(sizeof(T))) % 16 == 0 &&
                     (v_width * i64(sizeof(T))) % 16 == 0;
    const i64 per_row =
        i64(q_heads + k_heads) * (head_dim / 2) + (vec ? v_width / Pack<T>::size : v_width);
    const dim3 grid(grid_blocks(n * per_row, threads));
    if (vec) {
      DIFFTX_CUDA_CHECK("rope_kv_cache_write",
                        launch_pdl(rope_kv_write_kernel<T, true>, grid, dim3(threads), 0, stream,
                                   pdl_enabled("rope"), x, n, row_stride, positions, slots, q_heads,
                                   k_heads, head_dim, log_theta, interleaved, v_width,
                                   static_cast<T*>(k_pool), static_cast<T*>(v_pool)));
    } else {
      DIFFTX_CUDA_CHECK("rope_kv_cache_write",
                        launch_pdl(rope_kv_write_kernel<T, false>, grid, dim3(threads), 0, stream,
                                   pdl_enabled("rope"), x, n, row_stride, positions, slots, q_heads,
                                   k_heads, head_dim, log_theta, interleaved, v_width,
                                   static_cast<T*>(k_pool), static_cast<T*>(v_pool)));
    }
  })
}

}  // namespace difftx::cuda
