// Tensor-map encoding for the sm_90a attention kernels (see tma_map.h): cuTensorMapEncodeTiled,
// looked up once through the runtime so the library needs no link against libcuda.
#include "tma_map.h"

#include <cudaTypedefs.h>

namespace difftx::cuda::attn {
namespace {

PFN_cuTensorMapEncodeTiled_v12000 encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      return static_cast<PFN_cuTensorMapEncodeTiled_v12000>(nullptr);
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

}  // namespace

cudaError_t make_tile_map(CUtensorMap* map, const void* base, std::int64_t cols, std::int64_t rows,
                          std::int64_t batches, std::int64_t row_stride, int box_rows) {
  const PFN_cuTensorMapEncodeTiled_v12000 encode = encoder();
  if (encode == nullptr) return cudaErrorNotSupported;
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows),
                              static_cast<cuuint64_t>(batches)};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(row_stride) * 2,
                                 static_cast<cuuint64_t>(row_stride * rows) * 2};
  const cuuint32_t box[3] = {64, static_cast<cuuint32_t>(box_rows), 1};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  const CUresult r =
      encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<void*>(base), dims, strides, box,
             element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
             CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}

cudaError_t make_qkv_maps(TileMaps* maps, const OperandLayout& l, int q_box, int kv_box) {
  cudaError_t e = make_tile_map(&maps->q, l.q, l.q_cols, l.q_len, l.batch, l.q_stride, q_box);
  if (e == cudaSuccess) {
    e = make_tile_map(&maps->k, l.k, l.k_cols, l.kv_len, l.batch, l.k_stride, kv_box);
  }
  if (e == cudaSuccess) {
    e = make_tile_map(&maps->v, l.v, l.v_cols, l.kv_len, l.batch, l.v_stride, kv_box);
  }
  return e;
}

}  // namespace difftx::cuda::attn
