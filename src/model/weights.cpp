// The parameter table: each tensor's checkpoint name, typed member, shape, presence, init and
// decay policy, written once. parameter_specs and bind_weights both walk it, so the specs'
// names and order (the checkpoint format) and the members the model computes with agree.
#include "difftx/model/weights.h"

#include <iterator>

#include "difftx/core/error.h"
#include "difftx/model/params.h"

namespace difftx {
namespace {

// Which configs hold a tensor.
enum class When { always, diff_v1, diff_v1_gain, diff_v2, untied };
// A tensor's shape in the config's sizes (E = d_model, d = head_dim, F = ffn_dim, ...).
enum class Dims { E, d, d2, q_E, k_E, v_E, E_o, h_E, F_E, E_F, V_E };

template <typename Owner>
struct Entry {
  const char* name;  // checkpoint name (per layer: the suffix after "layers.<l>.")
  Tensor Owner::*member;
  Dims dims;
  When when;
  ParamInit init;
  bool weight_decay;  // AdamW decoupled decay: matrices yes; norms, gains, lambdas no
  const char* group;  // for `model info`
};

bool present(When when, const ModelConfig& c) {
  switch (when) {
    case When::always:
      return true;
    case When::diff_v1:
      return c.attention == AttentionKind::diff_v1;
    case When::diff_v1_gain:
      return c.attention == AttentionKind::diff_v1 && c.head_norm_gain;
    case When::diff_v2:
      return c.attention == AttentionKind::diff_v2;
    case When::untied:
      return !c.tied_embeddings;
  }
  return false;
}

Shape shape_of(Dims dims, const ModelConfig& c) {
  const std::int64_t E = c.d_model, d = c.head_dim, F = c.ffn_dim;
  switch (dims) {
    case Dims::E:
      return {E};
    case Dims::d:
      return {d};
    case Dims::d2:
      return {2 * d};
    case Dims::q_E:
      return {c.q_dim(), E};
    case Dims::k_E:
      return {c.k_dim(), E};
    case Dims::v_E:
      return {c.v_dim(), E};
    case Dims::E_o:
      return {E, c.attn_out_dim()};
    case Dims::h_E:
      return {c.n_heads, E};
    case Dims::F_E:
      return {F, E};
    case Dims::E_F:
      return {E, F};
    case Dims::V_E:
      return {c.vocab_size, E};
  }
  return {};
}

using L = LayerWeights;
using M = ModelWeights;
constexpr ParamInit kNormal = ParamInit::normal, kResidual = ParamInit::normal_residual,
                    kLambda = ParamInit::normal_lambda, kOnes = ParamInit::ones;

// In checkpoint order: the embedding, then each layer's tensors, then the tail.
constexpr Entry<M> kHead[] = {
    {"tok_embeddings.weight", &M::tok_embeddings, Dims::V_E, When::always, kNormal, true,
     "embedding"},
};
constexpr Entry<L> kLayer[] = {
    {"attn_norm.weight", &L::attn_norm, Dims::E, When::always, kOnes, false, "norm"},
    {"attn.wq.weight", &L::wq, Dims::q_E, When::always, kNormal, true, "attention"},
    {"attn.wk.weight", &L::wk, Dims::k_E, When::always, kNormal, true, "attention"},
    {"attn.wv.weight", &L::wv, Dims::v_E, When::always, kNormal, true, "attention"},
    {"attn.wo.weight", &L::wo, Dims::E_o, When::always, kResidual, true, "attention"},
    {"attn.lambda_q1", &L::lambda_q1, Dims::d, When::diff_v1, kLambda, false, "lambda"},
    {"attn.lambda_k1", &L::lambda_k1, Dims::d, When::diff_v1, kLambda, false, "lambda"},
    {"attn.lambda_q2", &L::lambda_q2, Dims::d, When::diff_v1, kLambda, false, "lambda"},
    {"attn.lambda_k2", &L::lambda_k2, Dims::d, When::diff_v1, kLambda, false, "lambda"},
    {"attn.head_norm.weight", &L::head_norm, Dims::d2, When::diff_v1_gain, kOnes, false, "norm"},
    {"attn.wlambda.weight", &L::wlambda, Dims::h_E, When::diff_v2, kNormal, true, "lambda"},
    {"ffn_norm.weight", &L::ffn_norm, Dims::E, When::always, kOnes, false, "norm"},
    {"ffn.w_gate.weight", &L::w_gate, Dims::F_E, When::always, kNormal, true, "ffn"},
    {"ffn.w_up.weight", &L::w_up, Dims::F_E, When::always, kNormal, true, "ffn"},
    {"ffn.w_down.weight", &L::w_down, Dims::E_F, When::always, kResidual, true, "ffn"},
};
constexpr Entry<M> kTail[] = {
    {"norm.weight", &M::norm, Dims::E, When::always, kOnes, false, "norm"},
    {"output.weight", &M::output, Dims::V_E, When::untied, kNormal, true, "output"},
};

// Every member appears exactly once: a member added to a struct without a row, or a row naming
// a member twice, does not compile.
template <typename Owner, std::size_t N>
constexpr bool members_distinct(const Entry<Owner> (&table)[N]) {
  for (std::size_t i = 0; i < N; ++i) {
    for (std::size_t j = i + 1; j < N; ++j) {
      if (table[i].member == table[j].member) return false;
    }
  }
  return true;
}
static_assert(members_distinct(kLayer));
static_assert(sizeof(LayerWeights) == std::size(kLayer) * sizeof(Tensor),
              "every LayerWeights member needs a row in kLayer");
static_assert(std::size(kHead) == 1 && std::size(kTail) == 2 && members_distinct(kTail) &&
                  kHead[0].member != kTail[0].member && kHead[0].member != kTail[1].member,
              "tok_embeddings, norm and output each need one row");

template <typename Owner>
ParamSpec spec_of(const Entry<Owner>& e, std::string name, const ModelConfig& c) {
  return {std::move(name), shape_of(e.dims, c), e.init, e.weight_decay, e.group};
}

// Not named `bind`: a call with a std::string argument would find std::bind by ADL.
template <typename Owner>
void bind_entry(const Entry<Owner>& e, const std::string& name, const ModelConfig& c,
                const ParamSet& set, Owner& owner) {
  if (!set.contains(name)) fail("parameters lack tensor '{}'", name);
  const Tensor& t = set.at(name);
  const Shape want = shape_of(e.dims, c);
  if (t.shape() != want) {
    fail("parameter '{}' has shape {}, the config needs {}", name, shape_string(t.shape()),
         shape_string(want));
  }
  owner.*e.member = t;  // a view: shares the set's storage
}

}  // namespace

std::vector<ParamSpec> parameter_specs(const ModelConfig& c) {
  std::vector<ParamSpec> specs;
  for (const auto& e : kHead) {
    if (present(e.when, c)) specs.push_back(spec_of(e, e.name, c));
  }
  for (int l = 0; l < c.n_layers; ++l) {
    for (const auto& e : kLayer) {
      if (present(e.when, c)) specs.push_back(spec_of(e, layer_param(l, e.name), c));
    }
  }
  for (const auto& e : kTail) {
    if (present(e.when, c)) specs.push_back(spec_of(e, e.name, c));
  }
  return specs;
}

ModelWeights bind_weights(const ModelConfig& c, const ParamSet& set) {
  ModelWeights w;
  for (const auto& e : kHead) {
    if (present(e.when, c)) bind_entry(e, e.name, c, set, w);
  }
  w.layers.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    for (const auto& e : kLayer) {
      if (present(e.when, c)) bind_entry(e, layer_param(l, e.name), c, set, w.layers[l]);
    }
  }
  for (const auto& e : kTail) {
    if (present(e.when, c)) bind_entry(e, e.name, c, set, w);
  }
  if (c.tied_embeddings) w.output = w.tok_embeddings;  // (V, E): the head reads the embedding
  return w;
}

}  // namespace difftx
