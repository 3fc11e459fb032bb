// Parsing, validation and derivation of ModelConfig.
#include "difftx/model/config.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "difftx/core/error.h"
#include "difftx/core/json_fields.h"
#include "difftx/core/json_input.h"
#include "difftx/model/memory_estimate.h"

namespace difftx {
using nlohmann::json;

const char* attention_kind_name(AttentionKind kind) {
  return enum_name(kAttentionKinds, kind);
}

const char* rope_style_name(RopeStyle style) {
  return enum_name(kRopeStyles, style);
}

RopeStyle parse_rope_style(std::string_view text, std::string_view what) {
  return parse_enum(kRopeStyles, text, what);
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

double lambda_init(int layer) {
  return 0.8 - 0.6 * std::exp(-0.3 * layer);
}

int default_ffn_dim(int d_model) {
  const std::int64_t raw = (8 * std::int64_t(d_model) + 2) / 3;  // ceil(8/3 E)
  const std::int64_t rounded = (raw + 63) / 64 * 64;
  // Beyond int only for absurd widths, which validate() refuses with the model's size.
  return static_cast<int>(
      std::min<std::int64_t>(rounded, std::numeric_limits<int>::max() / 64 * 64));
}

ModelConfig ModelConfig::from_json(const json& j, const std::string& source) {
  const JsonFields f(
      j, source,
      {"vocab_size", "d_model", "n_layers", "attention", "n_heads", "n_kv_heads", "head_dim",
       "ffn_dim", "rope_theta", "rope_style", "norm_eps", "lambda_init_std", "head_norm_gain",
       "tied_embeddings", "max_seq_len", "init_std"},
      JsonFields::Unknown::reject, JsonFields::Null::is_value,
      "known fields are listed in docs/config.md");
  constexpr int kMax = std::numeric_limits<int>::max();
  ModelConfig c;
  c.vocab_size = f.integer<int>("vocab_size", 1, kMax);
  c.d_model = f.integer<int>("d_model", 1, kMax);
  c.n_layers = f.integer<int>("n_layers", 1, kMax);
  c.attention = f.choice("attention", kAttentionKinds);
  c.n_heads = f.integer<int>("n_heads", 1, kMax);
  c.n_kv_heads = f.integer_or<int>("n_kv_heads", c.n_heads, 1, kMax);
  const std::int64_t per_head =
      std::int64_t(c.attention == AttentionKind::diff_v1 ? 2 : 1) * c.n_heads;
  const int derived_dim = static_cast<int>(std::max<std::int64_t>(c.d_model / per_head, 1));
  c.head_dim = f.integer_or<int>("head_dim", derived_dim, 1, kMax);
  c.ffn_dim = f.integer_or<int>("ffn_dim", default_ffn_dim(c.d_model), 1, kMax);
  c.rope_theta = f.number_or("rope_theta", 10000.0);
  c.rope_style = f.choice_or("rope_style", kRopeStyles, RopeStyle::interleaved);
  c.norm_eps = f.number_or("norm_eps", 1e-5);
  c.lambda_init_std = f.number_or("lambda_init_std", 0.1);
  c.head_norm_gain = f.boolean_or("head_norm_gain", true);
  c.tied_embeddings = f.boolean_or("tied_embeddings", true);
  c.max_seq_len = f.integer<int>("max_seq_len", 1, kMaxSeqLen);
  c.init_std = f.number_or("init_std", 0.02);
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
  // In 64 bits: head count x head dim may exceed int (then it cannot equal d_model).
  const std::int64_t width =
      std::int64_t(attention == AttentionKind::diff_v1 ? 2 : 1) * n_heads * std::int64_t(head_dim);
  if (width != d_model) {
    if (attention == AttentionKind::diff_v1) {
      fail(
          "{}: field 'd_model' ({}) must equal 2 * n_heads * head_dim = {} for diff_v1 "
          "(d_model divisible by 2 * n_heads)",
          source, d_model, width);
    }
    fail(
        "{}: field 'd_model' ({}) must equal n_heads * head_dim = {} for {} "
        "(d_model divisible by n_heads)",
        source, d_model, width, attention_kind_name(attention));
  }
  if (head_dim % 2 != 0) {
    fail("{}: field 'head_dim' ({}) must be even: RoPE rotates pairs of channels", source,
         head_dim);
  }
  auto finite_above = [&](double v, const char* name, bool allow_zero) {
    if (!std::isfinite(v) || v < 0 || (!allow_zero && v == 0)) {
      fail("{}: field '{}' must be {} finite number, got {}", source, name,
           allow_zero ? "a non-negative (>= 0)" : "a positive", v);
    }
  };
  finite_above(rope_theta, "rope_theta", false);
  finite_above(norm_eps, "norm_eps", false);
  finite_above(lambda_init_std, "lambda_init_std", true);
  finite_above(init_std, "init_std", false);
  // Sizes last: the figure names the whole model, not one field.
  const double params = parameter_count_real(*this);
  if (params > kMaxParameters) {
    fail(
        "{}: this model needs {:.0f} GiB for its f32 weights alone ({:.3g} parameters); difftx "
        "refuses models above {:.3g} parameters: check n_layers ({}), d_model ({}), ffn_dim ({}) "
        "and vocab_size ({})",
        source, params * 4 / double(1ull << 30), params, kMaxParameters, n_layers, d_model, ffn_dim,
        vocab_size);
  }
  if (n_layers > kMaxLayers) {
    fail("{}: field 'n_layers' is out of range: {} (at most {})", source, n_layers, kMaxLayers);
  }
  if (max_seq_len > kMaxSeqLen) {
    fail("{}: field 'max_seq_len' is out of range: {} (at most {})", source, max_seq_len,
         kMaxSeqLen);
  }
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
  const json j = read_json_file(path, "model config");
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
