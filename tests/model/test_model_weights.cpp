// Typed weight views: every checkpoint name binds to the member it names (spelled out here
// independently of the parameter table), each tensor exactly once, and the model refuses a
// parameter set it cannot bind or a tensor replaced behind its views.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "difftx/cpu/cpu_backend.h"
#include "difftx/model/model.h"
#include "difftx/model/weights.h"
#include "model_test_util.h"

namespace difftx::testing {
namespace {

struct Case {
  AttentionKind kind;
  bool gain;
  bool tied;
};

ModelConfig config_for(const Case& k) {
  ModelConfig c = tiny_config(k.kind, true, RopeStyle::interleaved, k.tied);
  c.head_norm_gain = k.gain;
  c.validate("weights test config");
  return c;
}

// name -> the member that must hold it, for every tensor the config has.
std::map<std::string, const Tensor*> expected_members(const ModelConfig& c, const ModelWeights& w) {
  std::map<std::string, const Tensor*> m;
  m["tok_embeddings.weight"] = &w.tok_embeddings;
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    const std::string p = "layers." + std::to_string(l) + ".";
    m[p + "attn_norm.weight"] = &lw.attn_norm;
    m[p + "attn.wq.weight"] = &lw.wq;
    m[p + "attn.wk.weight"] = &lw.wk;
    m[p + "attn.wv.weight"] = &lw.wv;
    m[p + "attn.wo.weight"] = &lw.wo;
    if (c.attention == AttentionKind::diff_v1) {
      m[p + "attn.lambda_q1"] = &lw.lambda_q1;
      m[p + "attn.lambda_k1"] = &lw.lambda_k1;
      m[p + "attn.lambda_q2"] = &lw.lambda_q2;
      m[p + "attn.lambda_k2"] = &lw.lambda_k2;
      if (c.head_norm_gain) m[p + "attn.head_norm.weight"] = &lw.head_norm;
    }
    if (c.attention == AttentionKind::diff_v2) m[p + "attn.wlambda.weight"] = &lw.wlambda;
    m[p + "ffn_norm.weight"] = &lw.ffn_norm;
    m[p + "ffn.w_gate.weight"] = &lw.w_gate;
    m[p + "ffn.w_up.weight"] = &lw.w_up;
    m[p + "ffn.w_down.weight"] = &lw.w_down;
  }
  m["norm.weight"] = &w.norm;
  if (!c.tied_embeddings) m["output.weight"] = &w.output;
  return m;
}

class WeightsTest : public ::testing::TestWithParam<Case> {};

TEST_P(WeightsTest, EveryNameBindsItsMemberAndNothingElse) {
  const ModelConfig c = config_for(GetParam());
  const ParamSet set = ParamSet::initialised(c, 3, DType::f64, Device::cpu);
  const ModelWeights w = bind_weights(c, set);
  ASSERT_EQ(int(w.layers.size()), c.n_layers);
  const auto expected = expected_members(c, w);
  ASSERT_EQ(expected.size(), set.size());
  std::set<const Tensor*> named;
  for (const auto& [name, member] : expected) {
    ASSERT_TRUE(set.contains(name)) << name;
    ASSERT_TRUE(member->defined()) << name;
    EXPECT_EQ(member->raw(), set.at(name).raw()) << name << " is bound to another tensor";
    EXPECT_EQ(member->shape(), set.at(name).shape()) << name;
    named.insert(member);
  }
  // Members the config does not use stay undefined (the head shares the embedding when tied).
  std::vector<const Tensor*> all = {&w.tok_embeddings, &w.norm};
  for (const LayerWeights& lw : w.layers) {
    for (const Tensor* t : {&lw.attn_norm, &lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.lambda_q1,
                            &lw.lambda_k1, &lw.lambda_q2, &lw.lambda_k2, &lw.head_norm, &lw.wlambda,
                            &lw.ffn_norm, &lw.w_gate, &lw.w_up, &lw.w_down}) {
      all.push_back(t);
    }
  }
  for (const Tensor* t : all) {
    if (!named.count(t)) {
      EXPECT_FALSE(t->defined()) << "a member the config lacks is bound";
    }
  }
  if (c.tied_embeddings) {
    EXPECT_EQ(w.output.raw(), w.tok_embeddings.raw());
  }
}

TEST_P(WeightsTest, SpecsFollowTheCheckpointOrder) {
  const ModelConfig c = config_for(GetParam());
  const auto specs = parameter_specs(c);
  ASSERT_FALSE(specs.empty());
  EXPECT_EQ(specs.front().name, "tok_embeddings.weight");
  EXPECT_EQ(specs[1].name, "layers.0.attn_norm.weight");
  EXPECT_EQ(specs.back().name, c.tied_embeddings ? "norm.weight" : "output.weight");
  std::set<std::string> names;
  for (const auto& s : specs) EXPECT_TRUE(names.insert(s.name).second) << "duplicate " << s.name;
}

INSTANTIATE_TEST_SUITE_P(Kinds, WeightsTest,
                         ::testing::Values(Case{AttentionKind::diff_v1, true, true},
                                           Case{AttentionKind::diff_v1, false, false},
                                           Case{AttentionKind::diff_v2, true, false},
                                           Case{AttentionKind::softmax, true, true}));

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Weights, MissingOrMisshapenTensorIsNamed) {
  const ModelConfig c = tiny_config(AttentionKind::diff_v2, false);
  const ParamSet full = ParamSet::initialised(c, 1, DType::f64, Device::cpu);
  ParamSet missing, misshapen;
  for (std::size_t i = 0; i < full.size(); ++i) {
    const std::string& name = full.name(i);
    if (name != "layers.1.ffn.w_up.weight") missing.add(name, full.tensor(i));
    misshapen.add(name, name == "layers.0.attn.wlambda.weight"
                            ? Tensor::zeros({c.n_heads + 1, c.d_model}, DType::f64)
                            : full.tensor(i));
  }
  EXPECT_EQ(error_of([&] { bind_weights(c, missing); }),
            "parameters lack tensor 'layers.1.ffn.w_up.weight'");
  EXPECT_NE(error_of([&] {
              bind_weights(c, misshapen);
            }).find("parameter 'layers.0.attn.wlambda.weight' has shape"),
            std::string::npos);
  auto backend = make_cpu_backend(DType::f64);
  EXPECT_EQ(error_of([&] { Model m(c, *backend, missing); }),
            "parameters lack tensor 'layers.1.ffn.w_up.weight'");
}

TEST(Weights, ModelReadsParametersWrittenInPlaceAndRefusesReplacedOnes) {
  const ModelConfig c = tiny_config(AttentionKind::diff_v1, false);
  auto backend = make_cpu_backend(DType::f64);
  Model model(c, *backend, ParamSet::initialised(c, 2, DType::f64, Device::cpu));
  const Tensor tokens = random_tokens(1, 6, c.vocab_size, 4);
  const double before = model.logits(tokens).data<double>()[0];
  // Zeroing the (tied) embedding in place zeroes the residual stream: uniform logits.
  Tensor& emb = model.params().at("tok_embeddings.weight");
  for (std::int64_t i = 0; i < emb.numel(); ++i) emb.data<double>()[i] = 0.0;
  model.refresh_compute_weights();
  const Tensor after = model.logits(tokens);
  EXPECT_NE(after.data<double>()[0], before);
  for (std::int64_t i = 1; i < c.vocab_size; ++i) {
    EXPECT_EQ(after.data<double>()[i], after.data<double>()[0]);
  }
  model.params().at("norm.weight") = Tensor::zeros({c.d_model}, DType::f64);
  EXPECT_NE(error_of([&] {
              model.refresh_compute_weights();
            }).find("parameter 'norm.weight' (or its gradient) was replaced"),
            std::string::npos);
}

}  // namespace
}  // namespace difftx::testing
