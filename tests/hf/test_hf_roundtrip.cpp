// Export -> import round trips on the CPU: identical weights and logits for DIFF V1 (MHA, GQA,
// MQA) and the softmax baseline, both RoPE styles, tied and untied heads; the exported tensors
// reproduce difftx's logits through an independent transcription of HF's forward pass;
// per-head gains folded into o_proj; sharded, bf16 and fp16 inputs; DiffLlama folders with an
// odd num_key_value_heads; the refusal of DIFF V2; and the CLI commands.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "difftx/core/atomic_file.h"
#include "difftx/core/safetensors.h"
#include "difftx/hf/hf_config.h"
#include "difftx/hf/hf_export.h"
#include "difftx/hf/hf_import.h"
#include "difftx/hf/hf_weights.h"
#include "difftx/model/checkpoint.h"
#include "hf_reference.h"
#include "hf_test_util.h"

namespace difftx::hf {
namespace {
namespace fs = std::filesystem;
using testing::difftx_logits;
using testing::max_abs;
using testing::max_abs_diff;
using testing::random_params;
using testing::tiny_config;

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

void expect_same_params(const ParamSet& a, const ParamSet& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a.name(i), b.name(i));
    EXPECT_TRUE(same_bits(a.tensor(i), b.tensor(i))) << a.name(i);
  }
}

nlohmann::json read_json(const fs::path& p) {
  return nlohmann::json::parse(read_file_text(p));
}

class HfRoundTrip : public testing::TempDirTest {
 protected:
  fs::path write_checkpoint(const std::string& name, const ModelConfig& c, const ParamSet& p,
                            bool tokenizer = true) {
    const fs::path d = dir(name);
    save_model_checkpoint(d, nlohmann::json{{"model", c.to_json()}}, c, p,
                          tokenizer ? testing::small_tokenizer() : fs::path(), 7);
    return d;
  }

  // Export, check against the HF reference forward, import, compare.
  void round_trip(const ModelConfig& c, std::uint64_t seed) {
    SCOPED_TRACE(fmt::format("{} h={} h_kv={} rope={} tied={} gain={}",
                             attention_kind_name(c.attention), c.n_heads, c.n_kv_heads,
                             rope_style_name(c.rope_style), c.tied_embeddings, c.head_norm_gain));
    const ParamSet params = random_params(c, seed);
    const fs::path ck = write_checkpoint("ck", c, params);
    const fs::path out = dir("hf");
    const HfExportResult r = export_hf(ck, out);
    EXPECT_EQ(r.model_type, c.attention == AttentionKind::diff_v1 ? "diffllama" : "llama");
    EXPECT_TRUE(r.tokenizer);
    for (const char* f :
         {"config.json", "generation_config.json", "model.safetensors", "tokenizer.model",
          "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
      EXPECT_TRUE(fs::exists(out / f)) << f;
    }
    const nlohmann::json cfg = read_json(out / "config.json");
    EXPECT_EQ(cfg.at("num_attention_heads"),
              c.attention == AttentionKind::diff_v1 ? 2 * c.n_heads : c.n_heads);
    EXPECT_EQ(cfg.at("num_key_value_heads"),
              c.attention == AttentionKind::diff_v1 ? 2 * c.n_kv_heads : c.n_kv_heads);
    EXPECT_EQ(cfg.at("tie_word_embeddings"), c.tied_embeddings);

    // The exported tensors give difftx's logits through HF's forward pass.
    const HfWeights w = load_hf_weights(out);
    EXPECT_EQ(w.set.tensors.count("lm_head.weight"), c.tied_embeddings ? 0u : 1u);
    EXPECT_EQ(w.metadata.at("format"), "pt");
    const auto tokens = testing::test_tokens(12, c.vocab_size, seed);
    const std::vector<float> ours = difftx_logits(c, params, tokens);
    const std::vector<double> theirs = testing::hf_reference_logits(cfg, w.set.tensors, tokens);
    EXPECT_LE(max_abs_diff(theirs, ours), 1e-4 * max_abs(ours));
    EXPECT_GT(max_abs(ours), 1.0);  // the check is not vacuous

    const HfModel back = read_hf_model(out);
    EXPECT_EQ(back.model_type, r.model_type);
    EXPECT_EQ(back.files.size(), 1u);
    EXPECT_EQ(back.tokenizer, out / "tokenizer.model");
    if (!c.head_norm_gain) {
      EXPECT_EQ(back.config.to_json(), c.to_json());
      expect_same_params(back.params, params);
      EXPECT_EQ(difftx_logits(back.config, back.params, tokens), ours);  // bit for bit
    } else {
      ModelConfig expected = c;
      expected.head_norm_gain = false;
      EXPECT_EQ(back.config.to_json(), expected.to_json());
      EXPECT_LE(max_abs_diff(std::vector<double>(ours.begin(), ours.end()),
                             difftx_logits(back.config, back.params, tokens)),
                1e-5 * max_abs(ours));
    }
    fs::remove_all(ck);
    fs::remove_all(out);
  }
};

TEST_F(HfRoundTrip, DiffV1AndSoftmaxAllLayouts) {
  std::uint64_t seed = 1;
  for (AttentionKind kind : {AttentionKind::diff_v1, AttentionKind::softmax}) {
    for (auto [h, hk] : std::vector<std::pair<int, int>>{{4, 4}, {4, 2}, {4, 1}}) {
      for (RopeStyle rope : {RopeStyle::interleaved, RopeStyle::half_split}) {
        for (bool tied : {true, false}) {
          round_trip(tiny_config(kind, h, hk, 4, rope, tied, false), seed++);
        }
      }
    }
  }
}

TEST_F(HfRoundTrip, HeadNormGainIsFoldedIntoOutputProjection) {
  round_trip(tiny_config(AttentionKind::diff_v1, 4, 2, 4, RopeStyle::interleaved, true, true), 11);
  round_trip(tiny_config(AttentionKind::diff_v1, 2, 2, 8, RopeStyle::half_split, false, true), 12);
}

TEST_F(HfRoundTrip, FoldedGainScalesOutputColumns) {
  const ModelConfig c =
      tiny_config(AttentionKind::diff_v1, 2, 2, 4, RopeStyle::interleaved, true, true);
  const ParamSet p = random_params(c, 5);
  export_hf(write_checkpoint("ck", c, p), dir("hf"));
  const HfWeights w = load_hf_weights(dir("hf"));
  const auto wo = p.at("layers.1.attn.wo.weight").to_float_vector();
  const auto g = p.at("layers.1.attn.head_norm.weight").to_float_vector();
  const auto o = w.set.tensors.at("model.layers.1.self_attn.o_proj.weight").to_float_vector();
  const int cols = c.attn_out_dim();
  for (int r = 0; r < c.d_model; ++r) {
    for (int k = 0; k < cols; ++k)
      EXPECT_EQ(o[r * cols + k], wo[r * cols + k] * g[k % (2 * c.head_dim)]);
  }
}

TEST_F(HfRoundTrip, RopeStyleCanBeChosenOnImport) {
  const ModelConfig c =
      tiny_config(AttentionKind::diff_v1, 4, 2, 4, RopeStyle::interleaved, false, false);
  const ParamSet p = random_params(c, 21);
  export_hf(write_checkpoint("ck", c, p), dir("hf"));
  HfImportOptions half;
  half.rope_style = RopeStyle::half_split;
  const HfImportResult imported = import_hf(dir("hf"), dir("ck_half"), half);
  EXPECT_EQ(imported.model.config.rope_style, RopeStyle::half_split);
  EXPECT_TRUE(imported.tokenizer_note.empty()) << imported.tokenizer_note;
  const auto tokens = testing::test_tokens(10, c.vocab_size, 3);
  const auto a = difftx_logits(c, p, tokens);
  const auto b = difftx_logits(imported.model.config, imported.model.params, tokens);
  EXPECT_LE(max_abs_diff(std::vector<double>(a.begin(), a.end()), b), 1e-5 * max_abs(a));
  // Exporting the half-split model again gives the very same HF tensors.
  export_hf(dir("ck_half"), dir("hf2"));
  const HfWeights w1 = load_hf_weights(dir("hf")), w2 = load_hf_weights(dir("hf2"));
  ASSERT_EQ(w1.set.tensors.size(), w2.set.tensors.size());
  for (const auto& [name, t] : w1.set.tensors)
    EXPECT_TRUE(same_bits(t, w2.set.tensors.at(name))) << name;
  EXPECT_EQ(w2.metadata.at("difftx_rope_style"), "half_split");
}

TEST_F(HfRoundTrip, ShardedBf16AndFp16Folders) {
  const ModelConfig c =
      tiny_config(AttentionKind::diff_v1, 4, 2, 4, RopeStyle::interleaved, false, false);
  const ParamSet p = random_params(c, 31);
  export_hf(write_checkpoint("ck", c, p), dir("hf"));
  const HfModel single = read_hf_model(dir("hf"));
  const HfWeights w = load_hf_weights(dir("hf"));

  // Sharded: three files plus the index, tensors spread round-robin.
  const fs::path sharded = dir("sharded");
  fs::create_directories(sharded);
  fs::copy_file(dir("hf") / "config.json", sharded / "config.json");
  std::vector<std::vector<std::pair<std::string, Tensor>>> shards(3);
  nlohmann::json index = {{"metadata", {{"total_size", 0}}},
                          {"weight_map", nlohmann::json::object()}};
  int i = 0;
  for (const auto& [name, t] : w.set.tensors) {
    const int s = i++ % 3;
    shards[s].emplace_back(name, t);
    index["weight_map"][name] = fmt::format("model-{:05d}-of-00003.safetensors", s + 1);
  }
  for (int s = 0; s < 3; ++s) {
    testing::write_safetensors_as(sharded / fmt::format("model-{:05d}-of-00003.safetensors", s + 1),
                                  shards[s], "F32",
                                  {{"format", "pt"}, {"difftx_rope_style", "interleaved"}});
  }
  write_file_atomic(sharded / "model.safetensors.index.json", index.dump(2));
  const HfModel from_shards = read_hf_model(sharded);
  EXPECT_EQ(from_shards.files.size(), 3u);
  expect_same_params(from_shards.params, single.params);

  // bf16 via `export --dtype bf16`: the weights are the bf16-rounded originals.
  HfExportOptions bf16;
  bf16.dtype = DType::bf16;
  export_hf(dir("ck"), dir("hf_bf16"), bf16);
  EXPECT_EQ(read_json(dir("hf_bf16") / "config.json").at("torch_dtype"), "bfloat16");
  EXPECT_EQ(read_safetensors_header(dir("hf_bf16") / "model.safetensors").entries.front().dtype,
            "BF16");
  const HfModel from_bf16 = read_hf_model(dir("hf_bf16"));
  for (std::size_t k = 0; k < p.size(); ++k) {
    EXPECT_TRUE(same_bits(from_bf16.params.tensor(k),
                          p.tensor(k).to_dtype(DType::bf16).to_dtype(DType::f32)))
        << p.name(k);
  }

  // fp16 files (as transformers writes with torch_dtype float16).
  const fs::path f16 = dir("hf_f16");
  fs::create_directories(f16);
  fs::copy_file(dir("hf") / "config.json", f16 / "config.json");
  std::vector<std::pair<std::string, Tensor>> all(w.set.tensors.begin(), w.set.tensors.end());
  testing::write_safetensors_as(f16 / "model.safetensors", all, "F16", {{"format", "pt"}});
  HfImportOptions inter;
  inter.rope_style = RopeStyle::interleaved;
  const HfModel from_f16 = read_hf_model(f16, inter);
  for (std::size_t k = 0; k < p.size(); ++k) {
    const auto got = from_f16.params.tensor(k).to_float_vector();
    const auto want = p.tensor(k).to_float_vector();
    for (std::size_t e = 0; e < want.size(); ++e) {
      ASSERT_EQ(got[e], testing::round_to_f16(want[e])) << p.name(k) << "[" << e << "]";
    }
  }
}

TEST_F(HfRoundTrip, TiedModelMayCarryAnEqualLmHead) {
  const ModelConfig c =
      tiny_config(AttentionKind::softmax, 4, 2, 4, RopeStyle::interleaved, true, false);
  const ParamSet p = random_params(c, 41);
  export_hf(write_checkpoint("ck", c, p), dir("hf"));
  HfWeights w = load_hf_weights(dir("hf"));
  std::vector<std::pair<std::string, Tensor>> all(w.set.tensors.begin(), w.set.tensors.end());
  all.emplace_back("lm_head.weight", w.set.tensors.at("model.embed_tokens.weight"));
  testing::write_safetensors_as(dir("hf") / "model.safetensors", all, "F32",
                                {{"format", "pt"}, {"difftx_rope_style", "interleaved"}});
  expect_same_params(read_hf_model(dir("hf")).params, p);
}

// DiffLlama folders written by others may use an odd num_key_value_heads (e.g. 1): both maps
// of a pair then share key heads, which difftx represents by repeating them.
TEST_F(HfRoundTrip, DiffLlamaWithOddKvHeads) {
  for (auto [H, Hk] : std::vector<std::pair<int, int>>{{8, 1}, {12, 3}, {8, 8}}) {
    SCOPED_TRACE(fmt::format("H={} H_kv={}", H, Hk));
    const int D = 4, E = H * D, V = 50;
    nlohmann::json cfg = {{"model_type", "diffllama"},
                          {"architectures", {"DiffLlamaForCausalLM"}},
                          {"vocab_size", V},
                          {"hidden_size", E},
                          {"intermediate_size", 40},
                          {"num_hidden_layers", 2},
                          {"num_attention_heads", H},
                          {"num_key_value_heads", Hk},
                          {"head_dim", D},
                          {"rms_norm_eps", 1e-5},
                          {"rope_theta", 500.0},
                          {"max_position_embeddings", 32},
                          {"tie_word_embeddings", false},
                          {"hidden_act", "silu"}};
    std::mt19937_64 rng(static_cast<std::uint64_t>(H * 100 + Hk));
    std::normal_distribution<float> normal(0.f, 1.f);
    auto rand = [&](Shape s, float scale, float mean = 0.f) {
      std::vector<float> v(static_cast<std::size_t>(shape_numel(s)));
      for (auto& x : v) x = mean + scale * normal(rng);
      return Tensor::from_vector(s, v);
    };
    std::vector<std::pair<std::string, Tensor>> t;
    t.emplace_back("model.embed_tokens.weight", rand({V, E}, 1.0f));
    for (int l = 0; l < 2; ++l) {
      auto P = [&](const char* s) { return fmt::format("model.layers.{}.{}", l, s); };
      t.emplace_back(P("input_layernorm.weight"), rand({E}, 0.2f, 1.f));
      t.emplace_back(P("self_attn.q_proj.weight"), rand({H * D, E}, 0.3f));
      t.emplace_back(P("self_attn.k_proj.weight"), rand({Hk * D, E}, 0.3f));
      t.emplace_back(P("self_attn.v_proj.weight"), rand({Hk * D, E}, 0.3f));
      t.emplace_back(P("self_attn.o_proj.weight"), rand({E, H * D}, 0.3f));
      for (const char* s : {"self_attn.lambda_q1", "self_attn.lambda_k1", "self_attn.lambda_q2",
                            "self_attn.lambda_k2"}) {
        t.emplace_back(P(s), rand({D}, 0.3f));
      }
      t.emplace_back(P("post_attention_layernorm.weight"), rand({E}, 0.2f, 1.f));
      t.emplace_back(P("mlp.gate_proj.weight"), rand({40, E}, 0.3f));
      t.emplace_back(P("mlp.up_proj.weight"), rand({40, E}, 0.3f));
      t.emplace_back(P("mlp.down_proj.weight"), rand({E, 40}, 0.3f));
    }
    t.emplace_back("model.norm.weight", rand({E}, 0.2f, 1.f));
    t.emplace_back("lm_head.weight", rand({V, E}, 0.3f));
    const fs::path d = dir(fmt::format("dl_{}_{}", H, Hk));
    fs::create_directories(d);
    write_file_atomic(d / "config.json", cfg.dump(2));
    testing::write_safetensors_as(d / "model.safetensors", t, "F32");
    const HfModel m = read_hf_model(d);
    EXPECT_EQ(m.config.n_heads, H / 2);
    EXPECT_EQ(m.config.n_kv_heads, diffllama_kv_pairing(H, Hk).groups());
    EXPECT_FALSE(m.config.head_norm_gain);
    EXPECT_EQ(m.config.rope_style, RopeStyle::half_split);
    const auto tokens = testing::test_tokens(9, V, 5);
    const auto ours = difftx_logits(m.config, m.params, tokens);
    const std::map<std::string, Tensor> tm(t.begin(), t.end());
    const auto ref = testing::hf_reference_logits(cfg, tm, tokens);
    EXPECT_LE(max_abs_diff(ref, ours), 1e-4 * max_abs(ours));
  }
}

// config.json as transformers 5 writes it: RoPE only under rope_parameters, "dtype", version.
TEST(HfConfig, ReadsTransformers5Config) {
  const nlohmann::json j = nlohmann::json::parse(R"({
    "architectures": ["DiffLlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 1, "dtype": "float16", "eos_token_id": 2, "head_dim": 16, "hidden_act": "silu",
    "hidden_size": 128, "initializer_range": 0.1, "intermediate_size": 384, "lambda_std_dev": 0.1,
    "max_position_embeddings": 128, "model_type": "diffllama", "num_attention_heads": 8,
    "num_hidden_layers": 3, "num_key_value_heads": 4, "pad_token_id": 0, "rms_norm_eps": 1e-05,
    "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"},
    "tie_word_embeddings": true, "transformers_version": "5.17.0", "use_cache": true, "vocab_size": 1000})");
  const HfImportConfig c = parse_hf_config(j, "config.json", RopeStyle::half_split);
  EXPECT_EQ(c.model_type, "diffllama");
  EXPECT_EQ(c.config.rope_theta, 500000.0);
  EXPECT_EQ(c.config.n_heads, 4);
  EXPECT_EQ(c.config.n_kv_heads, 2);
  EXPECT_EQ(c.config.head_dim, 16);
  EXPECT_EQ(c.config.ffn_dim, 384);
  EXPECT_EQ(c.config.max_seq_len, 128);
  EXPECT_EQ(c.config.norm_eps, 1e-5);
  EXPECT_EQ(c.config.init_std, 0.1);
  EXPECT_TRUE(c.config.tied_embeddings);
  EXPECT_FALSE(c.config.head_norm_gain);
  EXPECT_EQ(c.heads.heads, 8);
  EXPECT_EQ(c.heads.kv_heads, 4);
  // The export writes both spellings of theta; they agree.
  const nlohmann::json out = hf_config_json(c.config, DType::f32);
  EXPECT_EQ(out.at("rope_theta"), 500000.0);
  EXPECT_EQ(out.at("rope_parameters").at("rope_theta"), 500000.0);
  EXPECT_EQ(out.at("num_key_value_heads"), 4);
}

TEST_F(HfRoundTrip, DiffV2IsRefused) {
  const ModelConfig c =
      tiny_config(AttentionKind::diff_v2, 4, 2, 4, RopeStyle::interleaved, true, false);
  const fs::path ck = write_checkpoint("ck", c, random_params(c, 51));
  testing::expect_error([&] { (void)export_hf(ck, dir("hf")); },
                        {"DIFF V2", "transformers has no DIFF V2 class", "DiffLlama", "Llama"});
  EXPECT_FALSE(fs::exists(dir("hf") / "config.json"));
}

// Runs the difftx program; returns its exit code and fills `output` (stdout and stderr).
int run_cli(const std::string& args, std::string& output) {
  const std::string cmd = std::string(DIFFTX_CLI) + " " + args + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return -1;
  char buf[4096];
  output.clear();
  while (std::size_t n = std::fread(buf, 1, sizeof(buf), pipe)) output.append(buf, n);
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(HfRoundTrip, CliExportAndImport) {
  const ModelConfig c =
      tiny_config(AttentionKind::diff_v1, 4, 2, 4, RopeStyle::interleaved, false, false);
  const ParamSet p = random_params(c, 61);
  const fs::path ck = write_checkpoint("ck", c, p);
  std::string out;
  ASSERT_EQ(
      run_cli(fmt::format("export hf --checkpoint {} --out {}", ck.string(), dir("hf").string()),
              out),
      0)
      << out;
  EXPECT_NE(out.find("model_type \"diffllama\""), std::string::npos) << out;
  ASSERT_EQ(
      run_cli(fmt::format("import hf --in {} --out {}", dir("hf").string(), dir("back").string()),
              out),
      0)
      << out;
  EXPECT_NE(out.find("diff_v1"), std::string::npos) << out;
  const ModelCheckpoint back = load_model_checkpoint(dir("back"));
  EXPECT_EQ(back.config.to_json(), c.to_json());
  expect_same_params(back.params, p);
  EXPECT_EQ(read_file_bytes(back.tokenizer), read_file_bytes(ck / "tokenizer.model"));

  const ModelConfig v2 =
      tiny_config(AttentionKind::diff_v2, 4, 2, 4, RopeStyle::interleaved, true, false);
  const fs::path ck2 = write_checkpoint("ck2", v2, random_params(v2, 62));
  EXPECT_EQ(
      run_cli(fmt::format("export hf --checkpoint {} --out {}", ck2.string(), dir("hf2").string()),
              out),
      1);
  EXPECT_NE(out.find("difftx: error: DIFF V2"), std::string::npos) << out;
  EXPECT_EQ(run_cli(fmt::format("import hf --in {}", dir("missing").string()), out), 1);
  EXPECT_NE(out.find("is not a folder"), std::string::npos) << out;
}

}  // namespace
}  // namespace difftx::hf
