// Op cases of the evaluation probes' materialized-attention ops (forward only: the probes never
// differentiate): score maps, absmax logit quantization, row softmax, probs x V with each
// combination, and the per-row KL divergence. Shapes are odd on purpose; GQA, decode-style
// offsets and head dim 64 (the CUDA-relevant size) are covered.
#include <cmath>

#include "op_cases.h"

namespace difftx::testing {
namespace {

using In = std::vector<Tensor>;
using Out = std::vector<Tensor>;

TensorSpec input(Shape s, Role role, double scale = 1.0) {
  return {std::move(s), role, false, 0, scale, 0.0};
}

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

// Geometry of one kind: `h` output heads (V1/V2: pairs of maps), `hkv` kv heads.
AttentionGeometry probe_geometry(ProbeCombine c, int batch, int seq, int kv_len, int offset, int h,
                                 int hkv, int d) {
  switch (c) {
    case ProbeCombine::diff_v1:
      return packed_attention_geometry(batch, seq, kv_len, offset, 2 * h, 2 * hkv, hkv, d, 2 * d);
    case ProbeCombine::diff_v2:
      return packed_attention_geometry(batch, seq, kv_len, offset, 2 * h, hkv, hkv, d, d);
    case ProbeCombine::softmax:
      return packed_attention_geometry(batch, seq, kv_len, offset, h, hkv, hkv, d, d);
  }
  return {};
}

std::string geometry_tag(const AttentionGeometry& g) {
  return fmt::format("b{}_t{}_s{}_off{}_hq{}_hk{}_d{}", g.batch, g.q_len, g.kv_len, g.q_offset,
                     g.q_heads, g.k_heads, g.head_dim);
}

Shape score_shape(const AttentionGeometry& g) {
  return {g.batch, g.q_heads, g.q_len, g.kv_len};
}

OpCase scores_case(ProbeCombine c, const AttentionGeometry& g) {
  OpCase oc;
  oc.name = fmt::format("probe_scores_{}_{}", combine_name(c), geometry_tag(g));
  oc.inputs = {input({g.batch * g.q_len, g.q_heads * g.head_dim}, Role::act),
               input({g.batch * g.kv_len, g.k_heads * g.head_dim}, Role::act)};
  oc.outputs = {{score_shape(g), Role::stat, false}};
  oc.forward = [c, g](Backend& b, const In& in, Out& out) {
    b.attention_scores(g, c, in[0], in[1], out[0]);
  };
  oc.backward = [](Backend&, const In&, const Out&, const Out&) { return Out{}; };
  return oc;
}

OpCase quantize_case(const AttentionGeometry& g, int bits, bool per_head) {
  OpCase oc;
  oc.name = fmt::format("probe_quantize_{}bit_{}_{}", bits, per_head ? "head" : "tensor",
                        geometry_tag(g));
  oc.inputs = {input(score_shape(g), Role::stat, 3.0)};
  oc.outputs = {{score_shape(g), Role::stat, false}};
  oc.forward = [g, bits, per_head](Backend& b, const In& in, Out& out) {
    out[0].copy_from(in[0]);
    b.attention_logits_quantize(g, bits, per_head, out[0]);
  };
  oc.backward = [](Backend&, const In&, const Out&, const Out&) { return Out{}; };
  return oc;
}

OpCase softmax_case(const AttentionGeometry& g) {
  OpCase oc;
  oc.name = fmt::format("probe_softmax_{}", geometry_tag(g));
  oc.inputs = {input(score_shape(g), Role::stat, 2.0)};
  oc.outputs = {{score_shape(g), Role::stat, false}};
  oc.forward = [g](Backend& b, const In& in, Out& out) { b.attention_softmax(g, in[0], out[0]); };
  oc.backward = [](Backend&, const In&, const Out&, const Out&) { return Out{}; };
  return oc;
}

OpCase probs_value_case(ProbeCombine c, const AttentionGeometry& g) {
  OpCase oc;
  oc.name = fmt::format("probe_probs_value_{}_{}", combine_name(c), geometry_tag(g));
  const int heads = probe_out_heads(g, c);
  // probs: any values (the op is linear in them); lambda around 0.5; gate logits ~N(0, 1)
  oc.inputs = {input(score_shape(g), Role::stat, 0.3),
               input({g.batch * g.kv_len, g.v_heads * g.v_head_dim}, Role::act),
               {{1}, Role::stat, false, 0, 0.2, 0.5},
               input({g.batch * g.q_len, heads}, Role::act)};
  oc.outputs = {{{g.batch * g.q_len, heads, g.v_head_dim}, Role::act, false}};
  oc.forward = [c, g](Backend& b, const In& in, Out& out) {
    b.attention_probs_value(g, c, in[0], in[1], in[2], in[3], out[0]);
  };
  oc.backward = [](Backend&, const In&, const Out&, const Out&) { return Out{}; };
  return oc;
}

OpCase kl_case(int n, int vocab) {
  OpCase oc;
  oc.name = fmt::format("probe_kl_rows_n{}_v{}", n, vocab);
  oc.inputs = {input({n, vocab}, Role::act, 2.0), input({n, vocab}, Role::act, 2.0)};
  oc.outputs = {{{n}, Role::stat, false}};
  oc.forward = [](Backend& b, const In& in, Out& out) {
    b.kl_divergence_rows(in[0], in[1], out[0]);
  };
  oc.backward = [](Backend&, const In&, const Out&, const Out&) { return Out{}; };
  return oc;
}

}  // namespace

std::vector<OpCase> probe_op_cases() {
  using C = ProbeCombine;
  std::vector<OpCase> cases;
  const AttentionGeometry v1_gqa = probe_geometry(C::diff_v1, 1, 7, 7, 0, 4, 2, 4);
  const AttentionGeometry v1_mha = probe_geometry(C::diff_v1, 2, 5, 5, 0, 2, 2, 4);
  const AttentionGeometry v1_off = probe_geometry(C::diff_v1, 1, 3, 8, 5, 2, 1, 6);
  const AttentionGeometry v2_gqa = probe_geometry(C::diff_v2, 2, 5, 5, 0, 2, 1, 4);
  const AttentionGeometry sm_gqa = probe_geometry(C::softmax, 1, 7, 7, 0, 4, 2, 6);
  const AttentionGeometry sm_off = probe_geometry(C::softmax, 2, 2, 9, 7, 3, 3, 4);
  const AttentionGeometry v1_d64 = probe_geometry(C::diff_v1, 1, 9, 9, 0, 2, 1, 64);
  const AttentionGeometry v2_d64 = probe_geometry(C::diff_v2, 1, 3, 11, 8, 2, 2, 64);
  for (const auto& [c, g] :
       {std::pair{C::diff_v1, v1_gqa}, std::pair{C::diff_v1, v1_mha}, std::pair{C::diff_v1, v1_off},
        std::pair{C::diff_v2, v2_gqa}, std::pair{C::softmax, sm_gqa}, std::pair{C::softmax, sm_off},
        std::pair{C::diff_v1, v1_d64}, std::pair{C::diff_v2, v2_d64}}) {
    cases.push_back(scores_case(c, g));
    cases.push_back(probs_value_case(c, g));
  }
  cases.push_back(quantize_case(v1_gqa, 8, false));
  cases.push_back(quantize_case(v1_gqa, 4, true));
  cases.push_back(quantize_case(sm_off, 6, false));
  cases.push_back(softmax_case(v1_gqa));
  cases.push_back(softmax_case(sm_off));
  cases.push_back(kl_case(5, 11));
  cases.push_back(kl_case(3, 300));
  return cases;
}

}  // namespace difftx::testing
