// Cross-entropy fused with the final softmax: one block per row, an online max / sum-of-exp
// pass in f32, then (with the backward) dlogits = (softmax - onehot) * grad_scale written in a
// second pass; no probability tensor is kept.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "difftx/cuda/common/scalar_type.h"

namespace difftx::cuda {

// logits (n, vocab) f32 or bf16; targets (n) i32, negative = ignored (loss 0, gradient 0);
// losses (n) f32 = logsumexp(row) - row[target]; a target >= vocab gives a NaN loss.
// dlogits (n, vocab) of the logits' type, or null for the forward only; it may alias logits.
void launch_cross_entropy(const void* logits, ScalarType type, const std::int32_t* targets,
                          float grad_scale, float* losses, void* dlogits, std::int64_t n,
                          std::int64_t vocab, cudaStream_t stream);

}  // namespace difftx::cuda
