// Hugging Face config.json for export, and its strict reading for import.
#include "difftx/hf/hf_config.h"

#include "difftx/core/error.h"
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

bool present(const json& j, const char* key) { return j.contains(key) && !j.at(key).is_null(); }

int get_int(const json& j, const char* key, const std::string& source, const int* fallback) {
  if (!present(j, key)) {
    if (!fallback) fail("{}: missing required field '{}'", source, key);
    return *fallback;
  }
  const json& v = j.at(key);
  if (!v.is_number_integer()) fail("{}: field '{}' must be an integer, got {}", source, key, v.dump());
  const auto x = v.get<long long>();
  if (x <= 0 || x > 2147483647LL) fail("{}: field '{}' must be a positive integer, got {}", source, key, x);
  return static_cast<int>(x);
}

double get_number(const json& j, const char* key, const std::string& source, double fallback) {
  if (!present(j, key)) return fallback;
  const json& v = j.at(key);
  if (!v.is_number()) fail("{}: field '{}' must be a number, got {}", source, key, v.dump());
  return v.get<double>();
}

bool get_bool(const json& j, const char* key, const std::string& source, bool fallback) {
  if (!present(j, key)) return fallback;
  const json& v = j.at(key);
  if (!v.is_boolean()) fail("{}: field '{}' must be true or false, got {}", source, key, v.dump());
  return v.get<bool>();
}

// RoPE: plain (default) rotary embeddings over the whole head; returns theta.
double read_rope(const json& j, const std::string& source) {
  double theta = get_number(j, "rope_theta", source, 10000.0);
  auto check_dict = [&](const char* key) {
    if (!present(j, key)) return;
    const json& r = j.at(key);
    if (!r.is_object()) fail("{}: field '{}' must be an object or null, got {}", source, key, r.dump());
    for (const char* type_key : {"rope_type", "type"}) {
      if (present(r, type_key) && r.at(type_key) != "default") {
        fail("{}: field '{}' asks for RoPE scaling {}: difftx implements plain RoPE only "
             "(rope_type \"default\")", source, key, r.at(type_key).dump());
      }
    }
    if (present(r, "rope_theta")) theta = get_number(r, "rope_theta", source + " (" + key + ")", theta);
    if (present(r, "partial_rotary_factor") &&
        get_number(r, "partial_rotary_factor", source, 1.0) != 1.0) {
      fail("{}: field '{}.partial_rotary_factor' is {}: difftx rotates the whole head "
           "(partial_rotary_factor 1)", source, key, r.at("partial_rotary_factor").dump());
    }
  };
  check_dict("rope_scaling");
  check_dict("rope_parameters");
  if (get_number(j, "partial_rotary_factor", source, 1.0) != 1.0) {
    fail("{}: field 'partial_rotary_factor' is {}: difftx rotates the whole head", source,
         j.at("partial_rotary_factor").dump());
  }
  if (!(theta > 0)) fail("{}: RoPE theta must be positive, got {}", source, theta);
  return theta;
}

}  // namespace

HfImportConfig parse_hf_config(const json& j, const std::string& source, RopeStyle rope_style) {
  if (!j.is_object()) fail("{}: a Hugging Face config must be a JSON object", source);
  if (!present(j, "model_type") || !j.at("model_type").is_string()) {
    fail("{}: no \"model_type\": difftx imports Hugging Face \"diffllama\" (DIFF V1) and "
         "\"llama\" (softmax) models", source);
  }
  HfImportConfig out;
  out.model_type = j.at("model_type").get<std::string>();
  const bool diff = out.model_type == "diffllama";
  if (!diff && out.model_type != "llama") {
    fail("{}: unsupported architecture model_type \"{}\": difftx imports \"diffllama\" (DIFF V1) "
         "and \"llama\" (softmax baseline) only", source, out.model_type);
  }
  if (present(j, "architectures")) {
    const json& a = j.at("architectures");
    const std::string want = diff ? "DiffLlamaForCausalLM" : "LlamaForCausalLM";
    if (!a.is_array() || a.size() != 1 || a.at(0) != want) {
      fail("{}: architectures is {}, expected [\"{}\"] (a causal language model)", source,
           a.dump(), want);
    }
  }
  const std::string act = present(j, "hidden_act") ? j.at("hidden_act").dump() : "\"silu\"";
  if (act != "\"silu\"" && act != "\"swish\"") {
    fail("{}: hidden_act is {}: difftx's feed-forward is SwiGLU (\"silu\")", source, act);
  }
  if (get_bool(j, "attention_bias", source, false)) {
    fail("{}: attention_bias is true: difftx projections have no biases", source);
  }
  if (get_bool(j, "mlp_bias", source, false)) {
    fail("{}: mlp_bias is true: difftx projections have no biases", source);
  }

  ModelConfig& c = out.config;
  c.attention = diff ? AttentionKind::diff_v1 : AttentionKind::softmax;
  c.vocab_size = get_int(j, "vocab_size", source, nullptr);
  c.d_model = get_int(j, "hidden_size", source, nullptr);
  c.ffn_dim = get_int(j, "intermediate_size", source, nullptr);
  c.n_layers = get_int(j, "num_hidden_layers", source, nullptr);
  const int heads = get_int(j, "num_attention_heads", source, nullptr);
  const int kv_heads = get_int(j, "num_key_value_heads", source, &heads);
  const int default_dim = c.d_model / heads;
  const int head_dim = get_int(j, "head_dim", source, &default_dim);
  if (heads % kv_heads != 0) {
    fail("{}: num_key_value_heads ({}) must divide num_attention_heads ({})", source, kv_heads, heads);
  }
  if (static_cast<long long>(heads) * head_dim != c.d_model) {
    fail("{}: num_attention_heads * head_dim = {} * {} differs from hidden_size {}: difftx needs "
         "the attention width to equal hidden_size", source, heads, head_dim, c.d_model);
  }
  if (head_dim % 2 != 0) fail("{}: head_dim {} must be even for RoPE", source, head_dim);
  out.heads = {diff, heads, kv_heads, head_dim};
  c.head_dim = head_dim;
  if (diff) {
    if (heads % 2 != 0) {
      fail("{}: num_attention_heads ({}) must be even for DiffLlama (heads c and c + H/2 form one "
           "differential head)", source, heads);
    }
    const DiffKvPairing pairing = diffllama_kv_pairing(heads, kv_heads);
    c.n_heads = heads / 2;
    c.n_kv_heads = pairing.groups();
    c.head_norm_gain = false;  // DiffLlama's per-head RMSNorm has no gain
    c.lambda_init_std = get_number(j, "lambda_std_dev", source, 0.1);
  } else {
    c.n_heads = heads;
    c.n_kv_heads = kv_heads;
    c.head_norm_gain = false;
  }
  const int default_positions = 2048;
  c.max_seq_len = get_int(j, "max_position_embeddings", source, &default_positions);
  c.rope_theta = read_rope(j, source);
  c.rope_style = rope_style;
  c.norm_eps = get_number(j, "rms_norm_eps", source, diff ? 1e-5 : 1e-6);
  c.init_std = get_number(j, "initializer_range", source, 0.02);
  c.tied_embeddings = get_bool(j, "tie_word_embeddings", source, false);
  c.validate(source + " (as a difftx config)");
  return out;
}

}  // namespace difftx::hf
