// CPU kernels of the evaluation probes' Backend ops (materialized attention, |x| statistics, KL
// divergence), templated on the element type (float or double); see attention_probe.h.
#pragma once

#include <cstdint>

#include "cpu_ops.h"

namespace difftx::cpu {

// scores (B, Hs, T, S)
template <typename T>
void attention_scores(const AttentionGeometry& g, ProbeCombine c, const T* q, const T* k,
                      T* scores);
template <typename T>
void attention_logits_quantize(const AttentionGeometry& g, int bits, bool per_head, T* scores);
template <typename T>
void attention_softmax(const AttentionGeometry& g, const T* scores, T* probs);
// out (B*T, heads, dv); lambda: V1 scalar; gate: V2 (B*T, h) or null
template <typename T>
void attention_probs_value(const AttentionGeometry& g, ProbeCombine c, const T* probs, const T* v,
                           double lambda, const T* gate, T* out);
// x: n elements of type X (float or double); scores: geometry of a scores tensor or null.
template <typename X>
void abs_histogram(const X* x, i64 n, const AttentionGeometry* scores, double* counts);
template <typename X>
i64 abs_select_at_least(const X* x, i64 n, const AttentionGeometry* scores, double threshold,
                        float* out, i64 capacity);
template <typename T>
void kl_divergence_rows(const T* ref, const T* x, i64 n, i64 vocab, T* out);

}  // namespace difftx::cpu
