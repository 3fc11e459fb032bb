// Hugging Face config.json for export, and its strict reading for import (core/json_fields.h).
#include "difftx/hf/hf_config.h"

#include <algorithm>
#include <limits>

#include "difftx/core/error.h"
#include "difftx/core/json_fields.h"
#include "difftx/core/json_input.h"
#include "difftx/data/tokenizer.h"

namespace difftx::hf {
using nlohmann::json;

const char* hf_model_type(const ModelConfig& config) {
  return hf_heads_for(config).diff ? "diffllama" : "llama";
}

json hf_config_json(const ModelConfig& c, DType dtype) {
  DIFFTX_CHECK(dtype == DType::f32 || dtype == DType::bf16,
               "Hugging Face export stores f32 or bf16 weights, not {}", dtype_name(dtype));
  const HfHeads heads = hf_heads_for(c);
  json j;
  j["architectures"] = json::array({heads.diff ? "DiffLlamaForCausalLM" : "LlamaForCausalLM"});
  j["model_type"] = heads.diff ? "diffllama" : "llama";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.d_model;
  j["intermediate_size"] = c.ffn_dim;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = heads.heads;
  j["num_key_value_heads"] = heads.kv_heads;
  j["head_dim"] = heads.head_dim;
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = c.max_seq_len;
  j["initializer_range"] = c.init_std;
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["rope_parameters"] = json{{"rope_type", "default"}, {"rope_theta", c.rope_theta}};
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  if (heads.diff) {
    j["lambda_std_dev"] = c.lambda_init_std;
  } else {
    j["mlp_bias"] = false;
    j["pretraining_tp"] = 1;
  }
  j["tie_word_embeddings"] = c.tied_embeddings;
  j["use_cache"] = true;
  j["bos_token_id"] = data::kBosId;
  j["eos_token_id"] = data::kEosId;
  j["pad_token_id"] = data::kPadId;
  j["torch_dtype"] = dtype == DType::bf16 ? "bfloat16" : "float32";
  return j;
}

json hf_generation_config_json() {
  return json{{"bos_token_id", data::kBosId},
              {"eos_token_id", data::kEosId},
              {"pad_token_id", data::kPadId},
              {"do_sample", false}};
}

namespace {

using Fields = JsonFields;
constexpr int kMaxInt = std::numeric_limits<int>::max();

// HF configs carry many fields difftx does not use; null means "not set".
Fields hf_fields(const json& j, const std::string& source) {
  return Fields(j, source, {}, Fields::Unknown::ignore, Fields::Null::is_absent);
}

// RoPE: plain (default) rotary embeddings over the whole head; returns theta.
double read_rope(const Fields& f, const std::string& source) {
  double theta = f.number_or("rope_theta", 10000.0);
  auto check_dict = [&](const char* key) {
    if (!f.has(key)) return;
    const json& r = f.at(key);
    if (!r.is_object())
      fail("{}: field '{}' must be an object or null, got {}", source, key, json_snippet(r));
    const Fields rf = hf_fields(r, source + " (" + key + ")");
    for (const char* type_key : {"rope_type", "type"}) {
      if (rf.has(type_key) && rf.at(type_key) != "default") {
        fail(
            "{}: field '{}' asks for RoPE scaling {}: difftx implements plain RoPE only "
            "(rope_type \"default\")",
            source, key, json_snippet(rf.at(type_key)));
      }
    }
    theta = rf.number_or("rope_theta", theta);
    if (rf.number_or("partial_rotary_factor", 1.0) != 1.0) {
      fail(
          "{}: field '{}.partial_rotary_factor' is {}: difftx rotates the whole head "
          "(partial_rotary_factor 1)",
          source, key, json_snippet(rf.at("partial_rotary_factor")));
    }
  };
  check_dict("rope_scaling");
  check_dict("rope_parameters");
  if (f.number_or("partial_rotary_factor", 1.0) != 1.0) {
    fail("{}: field 'partial_rotary_factor' is {}: difftx rotates the whole head", source,
         json_snippet(f.at("partial_rotary_factor")));
  }
  if (!(theta > 0)) fail("{}: RoPE theta must be positive, got {}", source, theta);
  return theta;
}

}  // namespace

HfImportConfig parse_hf_config(const json& j, const std::string& source, RopeStyle rope_style) {
  if (!j.is_object()) fail("{}: a Hugging Face config must be a JSON object", source);
  const Fields f = hf_fields(j, source);
  if (!f.has("model_type") || !f.at("model_type").is_string()) {
    fail(
        "{}: no \"model_type\": difftx imports Hugging Face \"diffllama\" (DIFF V1) and "
        "\"llama\" (softmax) models",
        source);
  }
  HfImportConfig out;
  out.model_type = f.string("model_type");
  const bool diff = out.model_type == "diffllama";
  if (!diff && out.model_type != "llama") {
    fail(
        "{}: unsupported architecture model_type \"{}\": difftx imports \"diffllama\" (DIFF V1) "
        "and \"llama\" (softmax baseline) only",
        source, text_snippet(out.model_type));
  }
  if (f.has("architectures")) {
    const json& a = f.at("architectures");
    const std::string want = diff ? "DiffLlamaForCausalLM" : "LlamaForCausalLM";
    if (!a.is_array() || a.size() != 1 || a.at(0) != want) {
      fail("{}: architectures is {}, expected [\"{}\"] (a causal language model)", source,
           json_snippet(a), want);
    }
  }
  const std::string act = f.has("hidden_act") ? json_snippet(f.at("hidden_act")) : "\"silu\"";
  if (act != "\"silu\"" && act != "\"swish\"") {
    fail("{}: hidden_act is {}: difftx's feed-forward is SwiGLU (\"silu\")", source, act);
  }
  if (f.boolean_or("attention_bias", false)) {
    fail("{}: attention_bias is true: difftx projections have no biases", source);
  }
  if (f.boolean_or("mlp_bias", false)) {
    fail("{}: mlp_bias is true: difftx projections have no biases", source);
  }

  ModelConfig& c = out.config;
  c.attention = diff ? AttentionKind::diff_v1 : AttentionKind::softmax;
  c.vocab_size = f.integer<int>("vocab_size", 1, kMaxInt);
  c.d_model = f.integer<int>("hidden_size", 1, kMaxInt);
  c.ffn_dim = f.integer<int>("intermediate_size", 1, kMaxInt);
  c.n_layers = f.integer<int>("num_hidden_layers", 1, kMaxInt);
  const int heads = f.integer<int>("num_attention_heads", 1, kMaxInt);
  const int kv_heads = f.integer_or<int>("num_key_value_heads", heads, 1, kMaxInt);
  const int head_dim = f.integer_or<int>("head_dim", std::max(c.d_model / heads, 1), 1, kMaxInt);
  if (heads % kv_heads != 0) {
    fail("{}: num_key_value_heads ({}) must divide num_attention_heads ({})", source, kv_heads,
         heads);
  }
  if (static_cast<long long>(heads) * head_dim != c.d_model) {
    fail(
        "{}: num_attention_heads * head_dim = {} * {} differs from hidden_size {}: difftx needs "
        "the attention width to equal hidden_size",
        source, heads, head_dim, c.d_model);
  }
  if (head_dim % 2 != 0) fail("{}: head_dim {} must be even for RoPE", source, head_dim);
  out.heads = {diff, heads, kv_heads, head_dim};
  c.head_dim = head_dim;
  if (diff) {
    if (heads % 2 != 0) {
      fail(
          "{}: num_attention_heads ({}) must be even for DiffLlama (heads c and c + H/2 form one "
          "differential head)",
          source, heads);
    }
    // Sizes first (with the fewest kv heads, a lower bound): the pairing search below takes
    // time quadratic in the head count.
    ModelConfig smallest = c;
    smallest.n_heads = heads / 2;
    smallest.n_kv_heads = 1;
    smallest.max_seq_len = 1;
    smallest.validate(source + " (as a difftx config)");
    const DiffKvPairing pairing = diffllama_kv_pairing(heads, kv_heads);
    c.n_heads = heads / 2;
    c.n_kv_heads = pairing.groups();
    c.head_norm_gain = false;  // DiffLlama's per-head RMSNorm has no gain
    c.lambda_init_std = f.number_or("lambda_std_dev", 0.1);
  } else {
    c.n_heads = heads;
    c.n_kv_heads = kv_heads;
    c.head_norm_gain = false;
  }
  c.max_seq_len = f.integer_or<int>("max_position_embeddings", 2048, 1, kMaxSeqLen);
  c.rope_theta = read_rope(f, source);
  c.rope_style = rope_style;
  c.norm_eps = f.number_or("rms_norm_eps", diff ? 1e-5 : 1e-6);
  c.init_std = f.number_or("initializer_range", 0.02);
  c.tied_embeddings = f.boolean_or("tie_word_embeddings", false);
  c.validate(source + " (as a difftx config)");
  return out;
}

}  // namespace difftx::hf
