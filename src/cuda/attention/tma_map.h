// Host side of the TMA loads: encodes the 3-d tensor maps (columns, rows, batch) that the sm_90a
// attention kernels read q, k, v and dO tiles through (128B swizzle, 64-column boxes, rows past
// the end of a batch zero-filled).
#pragma once

#include <cuda.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace difftx::cuda::attn {

// The tensor maps of one sm_90a kernel launch (passed as a __grid_constant__ kernel parameter).
// q, k, v: the operands (box rows = the kernel's tile rows); dout: backward only.
struct TileMaps {
  CUtensorMap q, k, v, dout;
};

// A bf16 matrix of `batches` x `rows` token rows of `cols` used columns, consecutive rows
// `row_stride` elements apart (multiple of 8; batch b starts at row b * rows). One box is 64
// columns x box_rows rows. Returns cudaErrorInvalidValue if the driver rejects the map.
cudaError_t make_tile_map(CUtensorMap* map, const void* base, std::int64_t cols, std::int64_t rows,
                          std::int64_t batches, std::int64_t row_stride, int box_rows);

// The q, k and v maps of one launch: q (B, T rows, q_cols) in boxes of q_box rows, k / v
// (B, S rows, k_cols / v_cols) in boxes of kv_box rows.
struct OperandLayout {
  const void *q, *k, *v;
  std::int64_t q_cols, k_cols, v_cols;
  std::int64_t q_stride, k_stride, v_stride;
  std::int64_t q_len, kv_len, batch;
};
cudaError_t make_qkv_maps(TileMaps* maps, const OperandLayout& l, int q_box, int kv_box);

// The layout of a launch's FwdParams / BwdParams (params.cuh) for head dim kD, value dim kDV.
template <int kD, int kDV, class Params>
OperandLayout operand_layout(const Params& p) {
  return {p.q,
          p.k,
          p.v,
          static_cast<std::int64_t>(p.q_comps) * kD,
          static_cast<std::int64_t>(p.k_comps) * kD,
          static_cast<std::int64_t>(p.v_heads) * kDV,
          p.q_stride,
          p.k_stride,
          p.v_stride,
          p.q_len,
          p.kv_len,
          p.batch};
}

}  // namespace difftx::cuda::attn
