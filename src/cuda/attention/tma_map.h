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
cudaError_t make_tile_map(CUtensorMap* map, const void* base, std::int64_t cols,
                          std::int64_t rows, std::int64_t batches, std::int64_t row_stride,
                          int box_rows);

}  // namespace difftx::cuda::attn
