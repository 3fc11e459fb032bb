// Materialized attention of the evaluation probes (cuda_attention layer) (attention_probe.h): score
// maps, absmax logit quantization, row softmax and probs x V with the V1 / V2 combinations. q, k, v
// are bf16 with the geometry's row strides; scores and probs (B, Hs, T, S) f32; masked entries are
// 0.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "difftx/model/attention_probe.h"

namespace difftx::cuda {

void launch_probe_scores(const AttentionGeometry& g, ProbeCombine combine, const void* q,
                         const void* k, float* scores, cudaStream_t stream);

// Bytes of the quantization workspace (one absmax per group).
std::size_t probe_quantize_workspace_bytes(const AttentionGeometry& g, bool per_head);
void launch_probe_quantize(const AttentionGeometry& g, int bits, bool per_head, float* scores,
                           void* workspace, cudaStream_t stream);

// probs may alias scores.
void launch_probe_softmax(const AttentionGeometry& g, const float* scores, float* probs,
                          cudaStream_t stream);

// out (B*T, heads, dv) bf16; lambda: device f32 (V1) or null; gate: bf16 (B*T, h) (V2) or null.
// dv at most 256.
void launch_probe_probs_value(const AttentionGeometry& g, ProbeCombine combine, const float* probs,
                              const void* v, const float* lambda, const void* gate, void* out,
                              cudaStream_t stream);

}  // namespace difftx::cuda
