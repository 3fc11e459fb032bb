// Parsing, validation and derivation of ModelConfig.
#include "difftx/model/config.h"

#include <cmath>
#include <set>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"

namespace difftx {
using nlohmann::json;

const char* attention_kind_name(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::diff_v1: return "diff_v1";
    case AttentionKind::diff_v2: return "diff_v2";
    case AttentionKind::softmax: return "softmax";
  }
  return "?";
}

const char* rope_style_name(RopeStyle style) {
  return style == RopeStyle::interleaved ? "interleaved" : "half_split";
}

int ModelConfig::q_heads() const {
  return attention == AttentionKind::softmax ? n_heads : 2 * n_heads;
}
int ModelConfig::k_heads() const {
  return attention == AttentionKind::diff_v1 ? 2 * n_kv_heads : n_kv_heads;
}
int ModelConfig::v_head_dim() const {
  return attention == AttentionKind::diff_v1 ? 2 * head_dim : head_dim;
}

double lambda_init(int layer) { return 0.8 - 0.6 * std::exp(-0.3 * layer); }

int default_ffn_dim(int d_model) {
  int raw = (8 * d_model + 2) / 3;  // ceil(8/3 E)
  return (raw + 63) / 64 * 64;
}

namespace {

const char* json_type(const json& v) { return v.type_name(); }

int get_int(const json& j, const char* key, const std::string& source, bool required, int fallback) {
  if (!j.contains(key)) {
    if (required) fail("{}: missing required field '{}'", source, key);
    return fallback;
  }
  const json& v = j.at(key);
  if (!v.is_number_integer()) {
    fail("{}: field '{}' must be an integer, got {} ({})", source, key, v.dump(), json_type(v));
  }
  auto x = v.get<long long>();
  if (x < -2147483647LL || x > 2147483647LL) fail("{}: field '{}' is out of range: {}", source, key, x);
  return static_cast<int>(x);
}

double get_double(const json& j, const char* key, const std::string& source, double fallback) {
  if (!j.contains(key)) return fallback;
  const json& v = j.at(key);
  if (!v.is_number()) {
    fail("{}: field '{}' must be a number, got {} ({})", source, key, v.dump(), json_type(v));
  }
  return v.get<double>();
}

bool get_bool(const json& j, const char* key, const std::string& source, bool fallback) {
  if (!j.contains(key)) return fallback;
  const json& v = j.at(key);
  if (!v.is_boolean()) {
    fail("{}: field '{}' must be true or false, got {} ({})", source, key, v.dump(), json_type(v));
  }
  return v.get<bool>();
}

std::string get_string(const json& j, const char* key, const std::string& source, bool required,
                       const std::string& fallback) {
  if (!j.contains(key)) {
    if (required) fail("{}: missing required field '{}'", source, key);
    return fallback;
  }
  const json& v = j.at(key);
  if (!v.is_string()) {
    fail("{}: field '{}' must be a string, got {} ({})", source, key, v.dump(), json_type(v));
  }
  return v.get<std::string>();
}

const std::set<std::string> kKnownFields = {
    "vocab_size", "d_model",        "n_layers",        "attention",      "n_heads",
    "n_kv_heads", "head_dim",       "ffn_dim",         "rope_theta",     "rope_style",
    "norm_eps",   "lambda_init_std", "head_norm_gain", "tied_embeddings", "max_seq_len",
    "init_std",   "comment"};

}  // namespace

ModelConfig ModelConfig::from_json(const json& j, const std::string& source) {
  if (!j.is_object()) fail("{}: a model config must be a JSON object, got {}", source, json_type(j));
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!kKnownFields.count(it.key())) {
      fail("{}: unknown field '{}' (known fields are listed in docs/config.md)", source, it.key());
    }
  }
  ModelConfig c;
  c.vocab_size = get_int(j, "vocab_size", source, true, 0);
  c.d_model = get_int(j, "d_model", source, true, 0);
  c.n_layers = get_int(j, "n_layers", source, true, 0);
  std::string kind = get_string(j, "attention", source, true, "");
  if (kind == "diff_v1") c.attention = AttentionKind::diff_v1;
  else if (kind == "diff_v2") c.attention = AttentionKind::diff_v2;
  else if (kind == "softmax") c.attention = AttentionKind::softmax;
  else fail("{}: field 'attention' must be \"diff_v1\", \"diff_v2\" or \"softmax\", got \"{}\"", source, kind);
  c.n_heads = get_int(j, "n_heads", source, true, 0);
  c.n_kv_heads = get_int(j, "n_kv_heads", source, false, c.n_heads);
  int per_head = c.attention == AttentionKind::diff_v1 ? 2 * std::max(c.n_heads, 1) : std::max(c.n_heads, 1);
  c.head_dim = get_int(j, "head_dim", source, false, c.d_model / per_head);
  c.ffn_dim = get_int(j, "ffn_dim", source, false, default_ffn_dim(std::max(c.d_model, 1)));
  c.rope_theta = get_double(j, "rope_theta", source, 10000.0);
  std::string style = get_string(j, "rope_style", source, false, "interleaved");
  if (style == "interleaved") c.rope_style = RopeStyle::interleaved;
  else if (style == "half_split") c.rope_style = RopeStyle::half_split;
  else fail("{}: field 'rope_style' must be \"interleaved\" or \"half_split\", got \"{}\"", source, style);
  c.norm_eps = get_double(j, "norm_eps", source, 1e-5);
  c.lambda_init_std = get_double(j, "lambda_init_std", source, 0.1);
  c.head_norm_gain = get_bool(j, "head_norm_gain", source, true);
  c.tied_embeddings = get_bool(j, "tied_embeddings", source, true);
  c.max_seq_len = get_int(j, "max_seq_len", source, true, 0);
  c.init_std = get_double(j, "init_std", source, 0.02);
  c.validate(source);
  return c;
}

void ModelConfig::validate(const std::string& source) const {
  auto positive = [&](int v, const char* name) {
    if (v <= 0) fail("{}: field '{}' must be positive, got {}", source, name, v);
  };
  positive(vocab_size, "vocab_size");
  positive(d_model, "d_model");
  positive(n_layers, "n_layers");
  positive(n_heads, "n_heads");
  positive(n_kv_heads, "n_kv_heads");
  positive(head_dim, "head_dim");
  positive(ffn_dim, "ffn_dim");
  positive(max_seq_len, "max_seq_len");
  if (n_heads % n_kv_heads != 0) {
    fail("{}: field 'n_kv_heads' ({}) must divide n_heads ({})", source, n_kv_heads, n_heads);
  }
  int width = attention == AttentionKind::diff_v1 ? 2 * n_heads * head_dim : n_heads * head_dim;
  if (width != d_model) {
    if (attention == AttentionKind::diff_v1) {
      fail("{}: field 'd_model' ({}) must equal 2 * n_heads * head_dim = {} for diff_v1 "
           "(d_model divisible by 2 * n_heads)", source, d_model, width);
    }
    fail("{}: field 'd_model' ({}) must equal n_heads * head_dim = {} for {} "
         "(d_model divisible by n_heads)", source, d_model, width, attention_kind_name(attention));
  }
  if (head_dim % 2 != 0) {
    fail("{}: field 'head_dim' ({}) must be even: RoPE rotates pairs of channels", source, head_dim);
  }
  if (!(rope_theta > 0)) fail("{}: field 'rope_theta' must be positive, got {}", source, rope_theta);
  if (!(norm_eps > 0)) fail("{}: field 'norm_eps' must be positive, got {}", source, norm_eps);
  if (!(lambda_init_std >= 0)) fail("{}: field 'lambda_init_std' must be >= 0, got {}", source, lambda_init_std);
  if (!(init_std > 0)) fail("{}: field 'init_std' must be positive, got {}", source, init_std);
}

json ModelConfig::to_json() const {
  return json{{"vocab_size", vocab_size},
              {"d_model", d_model},
              {"n_layers", n_layers},
              {"attention", attention_kind_name(attention)},
              {"n_heads", n_heads},
              {"n_kv_heads", n_kv_heads},
              {"head_dim", head_dim},
              {"ffn_dim", ffn_dim},
              {"rope_theta", rope_theta},
              {"rope_style", rope_style_name(rope_style)},
              {"norm_eps", norm_eps},
              {"lambda_init_std", lambda_init_std},
              {"head_norm_gain", head_norm_gain},
              {"tied_embeddings", tied_embeddings},
              {"max_seq_len", max_seq_len},
              {"init_std", init_std}};
}

ModelConfig load_model_config(const std::filesystem::path& path) {
  std::string text = read_file_text(path);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    fail("{}: not valid JSON: {}", path.string(), e.what());
  }
  // A run file holds the model under "model"; a model file is the object itself.
  if (j.is_object() && j.contains("model") && j.at("model").is_object()) {
    return ModelConfig::from_json(j.at("model"), path.string() + " (model)");
  }
  return ModelConfig::from_json(j, path.string());
}

ModelConfig matched_baseline(const ModelConfig& config) {
  ModelConfig b = config;
  b.attention = AttentionKind::softmax;
  if (config.attention == AttentionKind::diff_v1) {
    b.n_heads = 2 * config.n_heads;
    b.n_kv_heads = 2 * config.n_kv_heads;
  }
  b.head_norm_gain = false;
  return b;
}

}  // namespace difftx
