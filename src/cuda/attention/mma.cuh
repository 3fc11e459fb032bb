// Tile vocabulary for the attention kernels: cp.async copies, ldmatrix loads and the
// mma.sync.m16n8k16 bf16 tensor-core product, with the fragment layouts spelled out once.
//
// Fragment layouts (PTX ISA, m16n8k16 .bf16, lane = threadIdx.x % 32, g = lane / 4, c = lane % 4):
//   A (16x16, row-major): a[0] = (g, 2c..2c+1), a[1] = (g+8, 2c..), a[2] = (g, 2c+8..),
//                         a[3] = (g+8, 2c+8..)
//   B (16x8, k x n):      b[0] = (k 2c..2c+1, n g), b[1] = (k 2c+8.., n g)
//   C (16x8 fp32):        c[0..1] = (g, 2c..2c+1), c[2..3] = (g+8, 2c..2c+1)
// Two C tiles side by side (16x16) are exactly one A fragment once packed to bf16 (FA2's trick
// for feeding P into the P V product without shared memory).
//
// Shared-memory tiles are row-major with rows padded by 8 bf16 (16 bytes), which makes every
// ldmatrix phase (8 rows x 16 bytes at one column) and every 16-byte cp.async conflict-free.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "difftx/cuda/common/async_copy.cuh"

namespace difftx::cuda::attn {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(smem)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(smem)));
}

// d (16x8 fp32) += a (16x16 bf16) * b (16x8 bf16)
__device__ __forceinline__ void mma_bf16(float (&d)[4], const std::uint32_t (&a)[4],
                                         std::uint32_t b0, std::uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ std::uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<std::uint32_t*>(&v);
}
// 8 consecutive fp32 values (x0, x1) -> 8 bf16 in one 16-byte word.
__device__ __forceinline__ uint4 pack_bf16x8(const float4& x0, const float4& x1) {
  return make_uint4(pack_bf16(x0.x, x0.y), pack_bf16(x0.z, x0.w), pack_bf16(x1.x, x1.y),
                    pack_bf16(x1.z, x1.w));
}
// 8 values of x - c y (the DIFF combines: c = lambda for V1, the sigmoid gate for V2) as bf16.
__device__ __forceinline__ uint4 pack_bf16x8_minus(const float4& x0, const float4& x1,
                                                   const float4& y0, const float4& y1, float c) {
  return make_uint4(
      pack_bf16(x0.x - c * y0.x, x0.y - c * y0.y), pack_bf16(x0.z - c * y0.z, x0.w - c * y0.w),
      pack_bf16(x1.x - c * y1.x, x1.y - c * y1.y), pack_bf16(x1.z - c * y1.z, x1.w - c * y1.w));
}

// ---- fragment loads from padded row-major shared tiles (stride in elements) --------------

// A fragment of the 16x16 block at (r0, c0) of a row-major [m][k] tile.
__device__ __forceinline__ void load_a(std::uint32_t (&a)[4], const bf16* tile, int stride, int r0,
                                       int c0, int lane) {
  ldmatrix_x4(a, tile + (r0 + (lane & 15)) * stride + c0 + ((lane >> 4) << 3));
}
// A fragment of the 16x16 block (m0.., k0..) of A when the tile stores A^T as [k][m].
__device__ __forceinline__ void load_a_trans(std::uint32_t (&a)[4], const bf16* tile, int stride,
                                             int m0, int k0, int lane) {
  ldmatrix_x4_trans(
      a, tile + (k0 + (lane & 7) + ((lane >> 4) << 3)) * stride + m0 + (((lane >> 3) & 1) << 3));
}
// B fragments of two n-tiles (n0..n0+15) x (k0..k0+15) when the tile stores B^T as [n][k]
// (e.g. K for S = Q K^T). b[0], b[1]: n-tile n0; b[2], b[3]: n-tile n0+8.
__device__ __forceinline__ void load_b(std::uint32_t (&b)[4], const bf16* tile, int stride, int n0,
                                       int k0, int lane) {
  ldmatrix_x4(
      b, tile + (n0 + (lane & 7) + ((lane >> 4) << 3)) * stride + k0 + (((lane >> 3) & 1) << 3));
}
// Same two n-tiles when the tile stores B as [k][n] (e.g. V for O = P V).
__device__ __forceinline__ void load_b_trans(std::uint32_t (&b)[4], const bf16* tile, int stride,
                                             int n0, int k0, int lane) {
  ldmatrix_x4_trans(
      b, tile + (k0 + (lane & 7) + (((lane >> 3) & 1) << 3)) * stride + n0 + ((lane >> 4) << 3));
}

// Copies rows [0, kRows) x [0, kCols) of a global row-major bf16 matrix (row stride gstride
// elements) into a padded shared tile; rows >= valid_rows are zero-filled.
template <int kRows, int kCols, int kThreads>
__device__ __forceinline__ void load_tile_async(bf16* tile, int stride, const bf16* gmem,
                                                std::int64_t gstride, int valid_rows, int tid) {
  constexpr int kChunks = kCols / 8;
  static_assert(kCols % 8 == 0, "tile width must be a multiple of 8 elements");
#pragma unroll
  for (int c = tid; c < kRows * kChunks; c += kThreads) {
    const int r = c / kChunks;
    const int cc = c % kChunks;
    const bool ok = r < valid_rows;
    const bf16* src = ok ? gmem + r * gstride + cc * 8 : gmem;
    cp_async_16(tile + r * stride + cc * 8, src, ok ? 16 : 0);
  }
}

}  // namespace difftx::cuda::attn
