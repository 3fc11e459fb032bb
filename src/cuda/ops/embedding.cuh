// Token embedding: gather rows of the table (forward), deterministic scatter-add of the output
// gradient into the table gradient (backward: ids sorted with CUB, then one block per distinct
// id sums its rows in position order).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "difftx/cuda/common/scalar_type.h"

namespace difftx::cuda {

// out (n, e) = table (vocab, e)[ids (n)]. table f32 or bf16, out f32 or bf16. An id outside
// [0, vocab) gives a row of NaNs (the CPU backend throws; here the NaN reaches the loss).
void launch_embedding_forward(const std::int32_t* ids, const void* table, ScalarType table_type,
                              void* out, ScalarType out_type, std::int64_t n, std::int64_t vocab,
                              std::int64_t e, cudaStream_t stream);

// Device scratch bytes launch_embedding_backward needs for n ids.
std::size_t embedding_backward_workspace_bytes(std::int64_t n);

// dtable (vocab, e) f32 += sum over positions i with ids[i] == v of dout (n, e) row i
// (dout f32 or bf16). Ids outside [0, vocab) are skipped. Deterministic.
void launch_embedding_backward(const std::int32_t* ids, const void* dout, ScalarType dout_type,
                               float* dtable, std::int64_t n, std::int64_t vocab, std::int64_t e,
                               void* workspace, std::size_t workspace_bytes, cudaStream_t stream);

}  // namespace difftx::cuda
