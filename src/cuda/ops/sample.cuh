// Token sampling on the device (the engine's last op of a step): greedy argmax, or a Gumbel-max
// draw from softmax(logits / T) restricted to the top-k / top-p kept set, with counter-based
// uniforms (sample_uniform in include/difftx/model/paged_attention.h), the chosen token's
// log-probability and the top-N alternatives. Semantics: Backend::sample_tokens
// (include/difftx/model/backend.h); the CPU backend's src/cpu/sample.cpp is the oracle.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "scalar_type.h"

namespace difftx::cuda {

std::size_t sample_workspace_bytes(std::int64_t rows, std::int64_t vocab);

// logits (rows, vocab) of `type` (f32 or bf16); params (rows, kSampleParamWords) i32; tokens
// (rows) i32; logprobs (rows) f32; top_ids (rows, top_n) i32 and top_logprobs (rows, top_n) f32
// when top_n > 0 (top_n <= 64).
void launch_sample_tokens(const void* logits, ScalarType type, std::int64_t rows,
                          std::int64_t vocab, const std::int32_t* params, int top_n,
                          std::int32_t* tokens, float* logprobs, std::int32_t* top_ids,
                          float* top_logprobs, void* workspace, std::size_t workspace_bytes,
                          cudaStream_t stream);

}  // namespace difftx::cuda
