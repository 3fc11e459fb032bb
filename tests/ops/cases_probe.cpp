// Op cases of the evaluation probes' materialized attention (forward only: the probes never
// differentiate): score maps, absmax logit quantization, row softmax, probs x V with each
// combination, and the per-row KL divergence. Odd shapes, GQA and decode offsets; head dims 64 and
// 128 and long rows in the device suite. The |x| histogram and the threshold selection, whose
// outputs are counts, are checked exactly in tests/ops/test_probe_ops.cpp and
// tests/cuda/test_cuda_probe.cpp.
#include <fmt/format.h>

#include "case_builders.h"
#include "op_run.h"

namespace difftx::testing {
namespace {

const char* combine_name(ProbeCombine c) {
  switch (c) {
    case ProbeCombine::softmax:
      return "softmax";
    case ProbeCombine::diff_v1:
      return "v1";
    case ProbeCombine::diff_v2:
      return "v2";
  }
  return "?";
}

AttentionGeometry probe_geometry(ProbeCombine c, const AttentionShape& s) {
  const int h = s.heads, hkv = s.kv_heads, d = s.d;
  switch (c) {
    case ProbeCombine::diff_v1:
      return packed_attention_geometry(s.batch, s.q_len, s.kv_len, s.q_offset, 2 * h, 2 * hkv, hkv,
                                       d, 2 * d);
    case ProbeCombine::diff_v2:
      return packed_attention_geometry(s.batch, s.q_len, s.kv_len, s.q_offset, 2 * h, hkv, hkv, d,
                                       d);
    case ProbeCombine::softmax:
      break;
  }
  return packed_attention_geometry(s.batch, s.q_len, s.kv_len, s.q_offset, h, hkv, hkv, d, d);
}

std::string shape_name(const char* op, ProbeCombine c, const AttentionShape& s) {
  return fmt::format("{}_{}_b{}_t{}_s{}_off{}_h{}_hkv{}_d{}", op, combine_name(c), s.batch, s.q_len,
                     s.kv_len, s.q_offset, s.heads, s.kv_heads, s.d);
}

Shape score_shape(const AttentionGeometry& g) {
  return {g.batch, g.q_heads, g.q_len, g.kv_len};
}

}  // namespace

OpCase probe_scores_case(ProbeCombine combine, const AttentionShape& s) {
  OpCase c;
  c.name = shape_name("probe_scores", combine, s);
  c.op = "attention_scores";
  const AttentionGeometry g = probe_geometry(combine, s);
  c.inputs = {act("q", {std::int64_t(g.batch) * g.q_len, g.q_heads * g.head_dim}),
              act("k", {std::int64_t(g.batch) * g.kv_len, g.k_heads * g.head_dim})};
  c.outputs = {stat("scores", score_shape(g))};
  c.forward = [g, combine](Backend& b, const Tensors& in, Tensors& out) {
    b.attention_scores(g, combine, in[0], in[1], out[0]);
  };
  return c;
}

OpCase probe_quantize_case(const AttentionShape& s, int bits, bool per_head) {
  OpCase c;
  c.name = shape_name(per_head ? "probe_quantize_head" : "probe_quantize_tensor",
                      ProbeCombine::diff_v1, s) +
           fmt::format("_{}bit", bits);
  c.op = "attention_logits_quantize";
  const AttentionGeometry g = probe_geometry(ProbeCombine::diff_v1, s);
  c.inputs = {stat("scores", score_shape(g)).normal(3.0)};
  c.outputs = {stat("quantized", score_shape(g))};
  c.forward = [g, bits, per_head](Backend& b, const Tensors& in, Tensors& out) {
    out[0].copy_from(in[0]);
    b.attention_logits_quantize(g, bits, per_head, out[0]);
  };
  return c;
}

OpCase probe_softmax_case(const AttentionShape& s, bool in_place) {
  OpCase c;
  c.name =
      shape_name(in_place ? "probe_softmax_inplace" : "probe_softmax", ProbeCombine::softmax, s);
  c.op = "attention_softmax";
  const AttentionGeometry g = probe_geometry(ProbeCombine::softmax, s);
  c.inputs = {stat("scores", score_shape(g)).normal(2.0)};
  c.outputs = {stat("probs", score_shape(g))};
  c.forward = [g, in_place](Backend& b, const Tensors& in, Tensors& out) {
    if (in_place) {
      out[0].copy_from(in[0]);
      b.attention_softmax(g, out[0], out[0]);
    } else {
      b.attention_softmax(g, in[0], out[0]);
    }
  };
  return c;
}

OpCase probe_probs_value_case(ProbeCombine combine, const AttentionShape& s) {
  OpCase c;
  c.name = shape_name("probe_probs_value", combine, s);
  c.op = "attention_probs_value";
  const AttentionGeometry g = probe_geometry(combine, s);
  const int heads = probe_out_heads(g, combine);
  const std::int64_t nq = std::int64_t(g.batch) * g.q_len;
  // probs: any values (the op is linear in them); lambda around 0.5; gate logits ~N(0, 1)
  c.inputs = {stat("probs", score_shape(g)).normal(0.3),
              act("v", {std::int64_t(g.batch) * g.kv_len, g.v_heads * g.v_head_dim}),
              stat("lambda", {1}).normal(0.2, 0.5), act("gate_logits", {nq, heads})};
  c.outputs = {act("out", {nq, heads, g.v_head_dim})};
  c.forward = [g, combine](Backend& b, const Tensors& in, Tensors& out) {
    b.attention_probs_value(g, combine, in[0], in[1], in[2], in[3], out[0]);
  };
  return c;
}

OpCase probe_kl_case(int n, int vocab, DType dtype) {
  OpCase c;
  c.name = fmt::format("probe_kl_rows_n{}_v{}_{}", n, vocab, dtype_name(dtype));
  c.op = "kl_divergence_rows";
  c.inputs = {act("ref_logits", {n, vocab}).normal(2.0).on_device(dtype),
              act("logits", {n, vocab}).normal(2.0).on_device(dtype)};
  c.outputs = {stat("kl", {n})};
  c.forward = [](Backend& b, const Tensors& in, Tensors& out) {
    b.kl_divergence_rows(in[0], in[1], out[0]);
  };
  return c;
}

}  // namespace difftx::testing
