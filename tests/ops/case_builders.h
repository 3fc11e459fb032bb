// Builders of the op cases, one op family per file (cases_*.cpp, mirroring the CUDA backend's
// backend_*.cpp); the catalogue (op_cases.cpp) calls them with the shapes of its sweeps. Each
// builder names its case after every parameter, so names are unique.
#pragma once

#include <cstdint>

#include "op_cases.h"

namespace difftx::testing {

// ---- cases_memory.cpp: fill, convert, add / add_inplace
// Three outputs of `n` elements (device dtype d) filled with -1.5, 0.3 and 3.0; exact.
OpCase fill_case(std::int64_t n, DType d, std::int64_t offset);
// src (device dtype `from`, values of f32) converted to `to`; exact. specials plants
// infinities, a value that rounds to bf16 infinity, subnormals, signed zeros, ties and a NaN
// (device suite only: the outputs are not finite).
OpCase convert_case(std::int64_t n, DType from, DType to, std::int64_t offset, bool specials);
// out = a + b, then acc = a, acc += b (device dtype d).
OpCase add_case(std::int64_t n, DType d, std::int64_t offset);

// ---- cases_layers.cpp: embedding, RMSNorm, linear, RoPE, SwiGLU
// table (vocab, e) of device dtype table_dtype, out (n, e) of out_dtype; the forward is exact,
// the backward accumulates into a random dtable and is deterministic.
OpCase embedding_case(int n, int vocab, int e, DType table_dtype, DType out_dtype);
enum class Gain { none, f32, bf16 };
OpCase rmsnorm_case(int n, int c, Gain gain, double scale);
struct LinearShape {
  int n, k, m;
  bool accumulate_dx = false;
  std::int64_t offset = 64;
  DType act = DType::bf16;  // device dtype of x, w, out, dx (f32: the f32 path)
  double w_scale = 0.1;
  double dw_start = 1.0;  // scale of dw's random start (0: zeros)
};
OpCase linear_case(const LinearShape& s);
// x (batch*seq, heads*d + pad): rows of `heads` heads of d plus `pad` columns RoPE must leave
// alone. The backward is the inverse rotation of dout.
OpCase rope_case(int batch, int seq, int heads, int d, int pad, RopeStyle style, int pos_offset);
OpCase swiglu_case(int n, int f, double gate_scale);

// ---- cases_diff.cpp: DIFF V1 lambda, DIFF V2 combine
OpCase diff_lambda_case(int d, DType vector_dtype, double lambda_init, double scale);
OpCase v2_combine_case(int n, int h, int d);

// ---- cases_attention.cpp: softmax, DIFF V1 and DIFF V2 attention
struct AttentionShape {
  int batch, q_len, kv_len, q_offset;
  int heads, kv_heads;  // softmax: query / kv heads; DIFF V1 and V2: h / h_kv
  int d;
};
OpCase softmax_attention_case(const AttentionShape& s);
OpCase diff_attention_case(const AttentionShape& s);
// DIFF V2 forward (fused on Hopper); its backward is the two ops the model runs.
OpCase diff_v2_attention_case(const AttentionShape& s);

// ---- cases_loss.cpp: the fused cross-entropy
// logits (n, vocab) of device dtype `logits_dtype`; rows 1 and 4 (when present) have ignored
// targets (-1, -100); dlogits = (softmax - onehot) * grad_scale, in its own buffer or (alias)
// overwriting a copy of the logits.
OpCase cross_entropy_case(int n, int vocab, DType logits_dtype, double logit_scale,
                          double grad_scale, bool alias);

// ---- cases_optimizer.cpp: sum of squares, scale_inplace, AdamW
OpCase sum_of_squares_case(std::int64_t n, DType d);
OpCase scale_case(std::int64_t n, DType d, double factor, std::int64_t offset);
// Three AdamW steps (the second with gradients 1000x smaller) from a random parameter and zero
// moments; the device suite also checks the update itself (param - start).
OpCase adamw_case(std::int64_t n);

// ---- cases_probe.cpp: the evaluation probes' materialized attention (forward only)
OpCase probe_scores_case(ProbeCombine combine, const AttentionShape& s);
// DIFF V1 geometry of s; scores Normal(0, 3) quantized to `bits`.
OpCase probe_quantize_case(const AttentionShape& s, int bits, bool per_head);
OpCase probe_softmax_case(const AttentionShape& s, bool in_place);
OpCase probe_probs_value_case(ProbeCombine combine, const AttentionShape& s);
OpCase probe_kl_case(int n, int vocab, DType dtype);

}  // namespace difftx::testing
