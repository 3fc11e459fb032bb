// Model config parsing/validation (each bad field named), parameter counts and the matched
// baseline, plus the `difftx model` commands' behaviour on bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

#include "difftx/model/config.h"
#include "difftx/model/params.h"

namespace difftx::testing {
namespace {

nlohmann::json base() {
  return {{"vocab_size", 100}, {"d_model", 64},   {"n_layers", 2},    {"attention", "diff_v1"},
          {"n_heads", 4},      {"n_kv_heads", 2}, {"max_seq_len", 32}};
}

std::string error_of(const nlohmann::json& j) {
  try {
    ModelConfig::from_json(j, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelConfig, DefaultsAndDerivedSizes) {
  ModelConfig c = ModelConfig::from_json(base(), "cfg.json");
  EXPECT_EQ(c.head_dim, 8);   // 64 / (2 * 4)
  EXPECT_EQ(c.ffn_dim, 192);  // ceil(8/3 * 64) = 171 -> 192
  EXPECT_EQ(c.q_dim(), 64);
  EXPECT_EQ(c.k_dim(), 32);  // 2 h_kv components of d
  EXPECT_EQ(c.v_dim(), 32);  // h_kv heads of 2d
  EXPECT_EQ(c.attn_out_dim(), 64);
  EXPECT_EQ(default_ffn_dim(768), 2048);
  ModelConfig round = ModelConfig::from_json(c.to_json(), "round trip");
  EXPECT_EQ(round.to_json(), c.to_json());
}

TEST(ModelConfig, LambdaInitUsesZeroBasedLayerIndex) {
  EXPECT_DOUBLE_EQ(lambda_init(0), 0.2);
  EXPECT_DOUBLE_EQ(lambda_init(1), 0.8 - 0.6 * std::exp(-0.3));
  EXPECT_NEAR(lambda_init(40), 0.8, 1e-5);
}

struct BadCase {
  const char* what;
  nlohmann::json patch;
  const char* expected_field;
};

TEST(ModelConfig, BadConfigsNameTheField) {
  std::vector<BadCase> cases = {
      {"unknown field", {{"d_modle", 64}}, "'d_modle'"},
      {"wrong type", {{"n_layers", "two"}}, "'n_layers'"},
      {"float for int", {{"n_heads", 4.5}}, "'n_heads'"},
      {"bool wrong type", {{"tied_embeddings", 1}}, "'tied_embeddings'"},
      {"d_model not divisible", {{"d_model", 60}}, "'d_model'"},
      {"kv heads not dividing", {{"n_kv_heads", 3}}, "'n_kv_heads'"},
      {"odd head dim", {{"d_model", 56}, {"n_heads", 4}, {"n_kv_heads", 4}}, "'head_dim'"},
      {"zero layers", {{"n_layers", 0}}, "'n_layers'"},
      {"bad attention", {{"attention", "linear"}}, "'attention'"},
      {"bad rope style", {{"rope_style", "spiral"}}, "'rope_style'"},
      {"negative eps", {{"norm_eps", -1.0}}, "'norm_eps'"},
      {"missing vocab", {{"vocab_size", nullptr}}, "'vocab_size'"},
  };
  for (const auto& bc : cases) {
    nlohmann::json j = base();
    for (auto it = bc.patch.begin(); it != bc.patch.end(); ++it) {
      if (it.value().is_null())
        j.erase(it.key());
      else
        j[it.key()] = it.value();
    }
    std::string msg = error_of(j);
    EXPECT_NE(msg.find(bc.expected_field), std::string::npos) << bc.what << ": got '" << msg << "'";
    EXPECT_EQ(msg.find('\n'), std::string::npos) << bc.what << ": message must be one line";
  }
}

TEST(Params, CountMatchesFormulaForEveryKind) {
  for (const char* kind : {"diff_v1", "diff_v2", "softmax"}) {
    for (bool tied : {true, false}) {
      nlohmann::json j = base();
      j["attention"] = kind;
      j["tied_embeddings"] = tied;
      if (std::string(kind) != "diff_v1") j["n_heads"] = 8, j["n_kv_heads"] = 4;
      ModelConfig c = ModelConfig::from_json(j, "cfg");
      EXPECT_EQ(parameter_count(c), parameter_count_formula(c)) << kind << " tied=" << tied;
    }
  }
}

TEST(Params, MatchedBaselineHasDoubleHeadsAndEqualCountUpToLambdaAndGain) {
  ModelConfig diff = ModelConfig::from_json(base(), "cfg");
  ModelConfig soft = matched_baseline(diff);
  EXPECT_EQ(soft.attention, AttentionKind::softmax);
  EXPECT_EQ(soft.n_heads, 8);
  EXPECT_EQ(soft.n_kv_heads, 4);
  EXPECT_EQ(soft.head_dim, diff.head_dim);
  // DIFF V1 adds 4d lambda + 2d gain per layer, nothing else.
  EXPECT_EQ(parameter_count(diff) - parameter_count(soft), diff.n_layers * 6 * diff.head_dim);
}

TEST(Params, InitialisationFollowsTheDocumentedRules) {
  ModelConfig c = ModelConfig::from_json(base(), "cfg");
  ParamSet p = ParamSet::initialised(c, 1, DType::f32, Device::cpu);
  for (double x : p.at("layers.0.attn.head_norm.weight").to_double_vector()) EXPECT_EQ(x, 1.0);
  for (double x : p.at("norm.weight").to_double_vector()) EXPECT_EQ(x, 1.0);
  auto sd = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x * x;
    return std::sqrt(s / double(v.size()));
  };
  EXPECT_NEAR(sd(p.at("tok_embeddings.weight").to_double_vector()), 0.02, 0.002);
  EXPECT_NEAR(sd(p.at("layers.1.ffn.w_down.weight").to_double_vector()), 0.02 / 2.0, 0.001);
  std::vector<double> lambdas;
  for (int l = 0; l < 2; ++l)
    for (const char* s : {"attn.lambda_q1", "attn.lambda_k1", "attn.lambda_q2", "attn.lambda_k2"})
      for (double x : p.at(layer_param(l, s)).to_double_vector()) lambdas.push_back(x);
  EXPECT_NEAR(sd(lambdas), 0.1, 0.03);
  // Same seed, same values; other seed, other values.
  ParamSet again = ParamSet::initialised(c, 1, DType::f32, Device::cpu);
  ParamSet other = ParamSet::initialised(c, 2, DType::f32, Device::cpu);
  EXPECT_EQ(again.at("layers.0.attn.wq.weight").to_double_vector(),
            p.at("layers.0.attn.wq.weight").to_double_vector());
  EXPECT_NE(other.at("layers.0.attn.wq.weight").to_double_vector(),
            p.at("layers.0.attn.wq.weight").to_double_vector());
}

// Benchmarks' random weights: the documented distributions, and the same values whatever the
// number of threads that fill them (the embedding, 4096 x 64, is split among them).
TEST(Params, ParallelInitialisationFollowsTheRulesForAnyThreadCount) {
  nlohmann::json j = base();
  j["vocab_size"] = 4096;
  ModelConfig c = ModelConfig::from_json(j, "cfg");
  ParamSet one = ParamSet::initialised_parallel(c, 7, DType::f32, Device::cpu, 1);
  ParamSet three = ParamSet::initialised_parallel(c, 7, DType::f32, Device::cpu, 3);
  ASSERT_EQ(one.size(), three.size());
  for (std::size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(one.name(i), three.name(i));
    EXPECT_EQ(one.tensor(i).to_double_vector(), three.tensor(i).to_double_vector()) << one.name(i);
  }
  for (double x : three.at("layers.1.attn.head_norm.weight").to_double_vector()) EXPECT_EQ(x, 1.0);
  for (double x : three.at("norm.weight").to_double_vector()) EXPECT_EQ(x, 1.0);
  auto moments = [](const std::vector<double>& v) {
    double s = 0, s2 = 0;
    for (double x : v) {
      s += x;
      s2 += x * x;
    }
    return std::pair{s / double(v.size()), std::sqrt(s2 / double(v.size()))};
  };
  const auto [mean, sd] = moments(three.at("tok_embeddings.weight").to_double_vector());
  EXPECT_NEAR(mean, 0.0, 0.0005);  // 262,144 samples: the mean's sd is 0.02 / 512
  EXPECT_NEAR(sd, 0.02, 0.0005);
  EXPECT_NEAR(moments(three.at("layers.1.ffn.w_down.weight").to_double_vector()).second, 0.02 / 2.0,
              0.001);
  std::vector<double> lambdas;
  for (int l = 0; l < 2; ++l)
    for (const char* s : {"attn.lambda_q1", "attn.lambda_k1", "attn.lambda_q2", "attn.lambda_k2"})
      for (double x : three.at(layer_param(l, s)).to_double_vector()) lambdas.push_back(x);
  EXPECT_NEAR(moments(lambdas).second, 0.1, 0.03);
  // Tensors are streams of their own (no two alike), and another seed gives other values.
  EXPECT_NE(three.at("layers.0.attn.wq.weight").to_double_vector(),
            three.at("layers.1.attn.wq.weight").to_double_vector());
  ParamSet other = ParamSet::initialised_parallel(c, 8, DType::f32, Device::cpu, 3);
  EXPECT_NE(other.at("layers.0.attn.wq.weight").to_double_vector(),
            three.at("layers.0.attn.wq.weight").to_double_vector());
}

// The CLI prints one line naming the field and exits non-zero.
TEST(ModelCli, InfoRejectsBadConfigWithOneLine) {
  auto dir = std::filesystem::temp_directory_path() / "difftx_cfg_test";
  std::filesystem::create_directories(dir);
  auto path = dir / "bad.json";
  nlohmann::json j = base();
  j["n_kv_heads"] = 3;
  std::ofstream(path) << j.dump();
  std::string cmd = std::string(DIFFTX_CLI) + " model info --config " + path.string() + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, pipe)) out += buf;
  int status = pclose(pipe);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("'n_kv_heads'"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
}

}  // namespace
}  // namespace difftx::testing
