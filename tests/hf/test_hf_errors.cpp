// Every refusal of `import hf` and `export hf`: a clear difftx::Error naming the file, field or
// tensor at fault (unknown architectures, unsupported options, missing / extra / misshapen /
// integer / non-finite tensors, broken shard indexes, tied heads that differ, bad folders).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "difftx/core/atomic_file.h"
#include "difftx/core/safetensors.h"
#include "difftx/hf/hf_export.h"
#include "difftx/hf/hf_import.h"
#include "difftx/hf/hf_weights.h"
#include "difftx/model/checkpoint.h"
#include "hf_test_util.h"

namespace difftx::hf {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using testing::expect_error;
using testing::random_params;
using testing::tiny_config;

class HfErrors : public testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    config_ = tiny_config(AttentionKind::diff_v1, 2, 2, 8, RopeStyle::interleaved, false, false);
    ck_ = dir("ck");
    save_model_checkpoint(ck_, json{{"model", config_.to_json()}}, config_,
                          random_params(config_, 3), testing::small_tokenizer(), 0);
    export_hf(ck_, dir("hf"));
    tensors_ = load_hf_weights(dir("hf")).set.tensors;
    config_json_ = json::parse(read_file_text(dir("hf") / "config.json"));
  }

  // A copy of the export with `edit` applied to config.json and `tensors` as the weights.
  fs::path variant(const std::string& name, const std::function<void(json&)>& edit,
                   const std::map<std::string, Tensor>* tensors = nullptr) {
    const fs::path d = dir(name);
    fs::create_directories(d);
    json cfg = config_json_;
    edit(cfg);
    write_file_atomic(d / "config.json", cfg.dump(2));
    const auto& t = tensors ? *tensors : tensors_;
    std::vector<std::pair<std::string, Tensor>> list(t.begin(), t.end());
    save_safetensors(d / "model.safetensors", list, {{"format", "pt"}});
    return d;
  }

  void expect_import_error(const fs::path& d, const std::vector<std::string>& parts) {
    expect_error([&] { (void)read_hf_model(d); }, parts);
  }

  ModelConfig config_;
  fs::path ck_;
  std::map<std::string, Tensor> tensors_;
  json config_json_;
};

TEST_F(HfErrors, Folders) {
  expect_import_error(dir("nowhere"), {"nowhere", "is not a folder"});
  fs::create_directories(dir("empty"));
  expect_import_error(dir("empty"), {"has no config.json"});
  const fs::path bad = variant("badjson", [](json&) {});
  write_file_atomic(bad / "config.json", "{\"model_type\": ");
  expect_import_error(bad, {"config.json", "not valid JSON"});
  const fs::path noweights = variant("noweights", [](json&) {});
  fs::remove(noweights / "model.safetensors");
  expect_import_error(noweights, {"neither model.safetensors nor model.safetensors.index.json"});
  write_file_atomic(noweights / "pytorch_model.bin", "x");
  expect_import_error(noweights, {"pytorch_model.bin", "safetensors only"});
  const fs::path trunc = variant("truncated", [](json&) {});
  fs::resize_file(trunc / "model.safetensors", fs::file_size(trunc / "model.safetensors") - 4);
  expect_import_error(trunc, {"model.safetensors"});
  expect_error([&] { (void)import_hf(dir("hf"), dir("hf")); }, {"is the input folder"});
}

TEST_F(HfErrors, ConfigFields) {
  expect_import_error(variant("mistral", [](json& j) { j["model_type"] = "mistral"; }),
                      {"unsupported architecture", "\"mistral\"", "diffllama", "llama"});
  expect_import_error(variant("notype", [](json& j) { j.erase("model_type"); }),
                      {"no \"model_type\""});
  expect_import_error(
      variant("arch", [](json& j) { j["architectures"] = {"DiffLlamaForSequenceClassification"}; }),
      {"architectures", "DiffLlamaForCausalLM"});
  expect_import_error(variant("gelu", [](json& j) { j["hidden_act"] = "gelu"; }),
                      {"hidden_act", "gelu"});
  expect_import_error(variant("bias", [](json& j) { j["attention_bias"] = true; }),
                      {"attention_bias"});
  expect_import_error(variant("mlpbias", [](json& j) { j["mlp_bias"] = true; }), {"mlp_bias"});
  expect_import_error(variant("scaling",
                              [](json& j) {
                                j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
                              }),
                      {"rope_scaling", "RoPE scaling", "linear"});
  expect_import_error(variant("yarn",
                              [](json& j) {
                                j["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 1e4}};
                              }),
                      {"rope_parameters", "yarn"});
  expect_import_error(variant("partial", [](json& j) { j["partial_rotary_factor"] = 0.5; }),
                      {"partial_rotary_factor"});
  expect_import_error(variant("novocab", [](json& j) { j.erase("vocab_size"); }),
                      {"missing required field 'vocab_size'"});
  expect_import_error(variant("strvocab", [](json& j) { j["vocab_size"] = "400"; }),
                      {"'vocab_size'", "integer"});
  expect_import_error(variant("width", [](json& j) { j["head_dim"] = 4; }),
                      {"differs from hidden_size"});
  expect_import_error(variant("divide", [](json& j) { j["num_key_value_heads"] = 3; }),
                      {"num_key_value_heads (3) must divide num_attention_heads (4)"});
  expect_import_error(variant("odd",
                              [](json& j) {
                                j["num_attention_heads"] = 1;
                                j["num_key_value_heads"] = 1;
                                j["head_dim"] = 32;
                              }),
                      {"must be even for DiffLlama"});
  expect_import_error(variant("odddim",
                              [](json& j) {
                                j["model_type"] = "llama";
                                j["architectures"] = {"LlamaForCausalLM"};
                                j["num_attention_heads"] = 32;
                                j["num_key_value_heads"] = 32;
                                j["head_dim"] = 1;
                              }),
                      {"head_dim 1 must be even"});
  expect_import_error(variant("eps", [](json& j) { j["rms_norm_eps"] = -1.0; }), {"norm_eps"});
}

TEST_F(HfErrors, Tensors) {
  auto edited = [&](const std::function<void(std::map<std::string, Tensor>&)>& edit) {
    auto t = tensors_;
    edit(t);
    return t;
  };
  const std::string lq2 = "model.layers.1.self_attn.lambda_q2";
  auto missing = edited([&](std::map<std::string, Tensor>& t) { t.erase(lq2); });
  expect_import_error(variant(
                          "missing", [](json&) {}, &missing),
                      {"tensor '" + lq2 + "' is missing"});

  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  auto shape = edited([&](std::map<std::string, Tensor>& t) { t[q] = t[q].rows(0, 8).clone(); });
  expect_import_error(variant(
                          "shape", [](json&) {}, &shape),
                      {"model.safetensors", q, "[8, 32]", "[32, 32]"});

  auto extra = edited([&](std::map<std::string, Tensor>& t) {
    t["model.layers.0.self_attn.q_proj.bias"] = Tensor::zeros({32}, DType::f32);
  });
  expect_import_error(variant(
                          "extra", [](json&) {}, &extra),
                      {"unexpected tensor 'model.layers.0.self_attn.q_proj.bias'"});

  auto nan = edited([&](std::map<std::string, Tensor>& t) {
    t["model.norm.weight"] = t["model.norm.weight"].clone();
    t["model.norm.weight"].data<float>()[5] = NAN;
  });
  expect_import_error(variant(
                          "nan", [](json&) {}, &nan),
                      {"'model.norm.weight'", "non-finite", "at 5"});

  auto ints = edited([&](std::map<std::string, Tensor>& t) {
    t["model.norm.weight"] = Tensor::zeros({32}, DType::i32);
  });
  expect_import_error(variant(
                          "ints", [](json&) {}, &ints),
                      {"'model.norm.weight'", "holds integers"});

  // A llama config over DiffLlama weights: the lambda vectors are unexpected.
  expect_import_error(variant("llama",
                              [](json& j) {
                                j["model_type"] = "llama";
                                j["architectures"] = {"LlamaForCausalLM"};
                              }),
                      {"unexpected tensor 'model.layers.0.self_attn.lambda_k1'", "Llama"});

  // Untied config without lm_head; tied config with a different lm_head.
  auto nohead = edited([&](std::map<std::string, Tensor>& t) { t.erase("lm_head.weight"); });
  expect_import_error(variant(
                          "nohead", [](json&) {}, &nohead),
                      {"tensor 'lm_head.weight' is missing"});
  expect_import_error(variant("tied", [](json& j) { j["tie_word_embeddings"] = true; }),
                      {"tie_word_embeddings is true", "'lm_head.weight' differs"});
}

TEST_F(HfErrors, ShardIndex) {
  const fs::path d = variant("sharded", [](json&) {});
  fs::remove(d / "model.safetensors");
  std::vector<std::pair<std::string, Tensor>> a, b;
  json map = json::object();
  for (const auto& [name, t] : tensors_) {
    const bool first = name < "model.layers.1";
    (first ? a : b).emplace_back(name, t);
    map[name] = first ? "a.safetensors" : "b.safetensors";
  }
  save_safetensors(d / "a.safetensors", a, {{"format", "pt"}});
  save_safetensors(d / "b.safetensors", b, {{"format", "pt"}});
  const fs::path index = d / "model.safetensors.index.json";
  write_file_atomic(index, json{{"weight_map", map}}.dump());
  EXPECT_NO_THROW((void)read_hf_model(d));

  write_file_atomic(index, "not json");
  expect_import_error(d, {"model.safetensors.index.json", "not valid JSON"});
  write_file_atomic(index, json{{"metadata", json::object()}}.dump());
  expect_import_error(d, {"no \"weight_map\""});

  json bad = map;
  bad["model.norm.weight"] = "c.safetensors";
  write_file_atomic(index, json{{"weight_map", bad}}.dump());
  expect_import_error(d, {"shard 'c.safetensors'", "does not exist"});

  bad = map;
  bad["model.layers.0.input_layernorm.weight"] = "b.safetensors";
  write_file_atomic(index, json{{"weight_map", bad}}.dump());
  expect_import_error(
      d, {"b.safetensors", "'model.layers.0.input_layernorm.weight'", "has no such tensor"});

  bad = map;
  bad["model.norm.weight"] = "../escape.safetensors";
  write_file_atomic(index, json{{"weight_map", bad}}.dump());
  expect_import_error(d, {"not a file name inside the folder"});

  // A tensor stored in two shards.
  b.emplace_back("model.embed_tokens.weight", tensors_.at("model.embed_tokens.weight"));
  save_safetensors(d / "b.safetensors", b, {{"format", "pt"}});
  write_file_atomic(index, json{{"weight_map", map}}.dump());
  expect_import_error(d, {"'model.embed_tokens.weight' is stored twice"});
}

TEST_F(HfErrors, RecordedRopeStyle) {
  const fs::path d = variant("rope", [](json&) {});
  std::vector<std::pair<std::string, Tensor>> list(tensors_.begin(), tensors_.end());
  save_safetensors(d / "model.safetensors", list,
                   {{"format", "pt"}, {"difftx_rope_style", "spiral"}});
  expect_import_error(d, {"difftx_rope_style", "spiral"});
}

TEST_F(HfErrors, Export) {
  expect_error([&] { (void)export_hf(ck_, ck_); }, {"is the checkpoint folder itself"});
  expect_error([&] { (void)export_hf(dir("nothing"), dir("out")); },
               {"nothing", "is not a folder"});
  fs::create_directories(dir("stale"));
  write_file_atomic(dir("stale") / "model.safetensors.index.json", "{}");
  expect_error([&] { (void)export_hf(ck_, dir("stale")); },
               {"model.safetensors.index.json", "another --out"});
  EXPECT_FALSE(fs::exists(dir("stale") / "config.json"));

  // A tokenizer with more pieces (400) than the model's vocabulary.
  const ModelConfig small =
      tiny_config(AttentionKind::softmax, 2, 2, 8, RopeStyle::interleaved, true, false, 300);
  save_model_checkpoint(dir("small"), json{{"model", small.to_json()}}, small,
                        random_params(small, 4), testing::small_tokenizer(), 0);
  expect_error([&] { (void)export_hf(dir("small"), dir("out")); },
               {"400 pieces", "vocab_size is 300"});

  // A tokenizer.model that is not a difftx tokenizer.
  write_file_atomic(dir("small") / "tokenizer.model", "not a model");
  expect_error([&] { (void)export_hf(dir("small"), dir("out")); }, {"tokenizer.model"});
}

}  // namespace
}  // namespace difftx::hf
