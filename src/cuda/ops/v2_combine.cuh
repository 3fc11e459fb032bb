// DIFF V2 combination of paired attention heads: out_i = a_{2i} - sigmoid(gate_i) * a_{2i+1},
// per token, and its backward.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "difftx/cuda/common/scalar_type.h"

namespace difftx::cuda {

// a (n, 2h, d), gate_logits (n, h), out (n, h, d), all of `type` (f32 or bf16).
void launch_v2_combine_forward(const void* a, const void* gate_logits, void* out, ScalarType type,
                               std::int64_t n, int h, int d, cudaStream_t stream);
// da (n, 2h, d) =, dgate_logits (n, h) =.
void launch_v2_combine_backward(const void* a, const void* gate_logits, const void* dout, void* da,
                                void* dgate_logits, ScalarType type, std::int64_t n, int h, int d,
                                cudaStream_t stream);

}  // namespace difftx::cuda
