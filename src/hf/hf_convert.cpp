// In-memory conversion of weights between difftx parameters and Hugging Face tensors.
#include "difftx/hf/hf_convert.h"

#include <cmath>
#include <cstring>
#include <set>

#include "difftx/core/error.h"

namespace difftx::hf {

namespace {

struct Suffix {
  const char* difftx;
  const char* hf;
};

constexpr Suffix kLayerSuffixes[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn.wq.weight", "self_attn.q_proj.weight"},
    {"attn.wk.weight", "self_attn.k_proj.weight"},
    {"attn.wv.weight", "self_attn.v_proj.weight"},
    {"attn.wo.weight", "self_attn.o_proj.weight"},
    {"attn.lambda_q1", "self_attn.lambda_q1"},
    {"attn.lambda_k1", "self_attn.lambda_k1"},
    {"attn.lambda_q2", "self_attn.lambda_q2"},
    {"attn.lambda_k2", "self_attn.lambda_k2"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn.w_gate.weight", "mlp.gate_proj.weight"},
    {"ffn.w_up.weight", "mlp.up_proj.weight"},
    {"ffn.w_down.weight", "mlp.down_proj.weight"},
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The layer index and suffix of "layers.<l>.<suffix>"; false for other names.
bool split_layer_name(const std::string& name, int& layer, std::string& suffix) {
  if (name.rfind("layers.", 0) != 0) return false;
  const std::size_t dot = name.find('.', 7);
  if (dot == std::string::npos || dot == 7) return false;
  layer = std::stoi(name.substr(7, dot - 7));
  suffix = name.substr(dot + 1);
  return true;
}

Tensor scale_columns(const Tensor& w, const Tensor& gain, std::int64_t period) {
  // w (E, n*period): column k scaled by gain[k % period].
  Tensor out = w.clone();
  float* o = out.data<float>();
  const float* g = gain.data<float>();
  const std::int64_t rows = w.dim(0), cols = w.dim(1);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t k = 0; k < cols; ++k) o[r * cols + k] *= g[k % period];
  }
  return out;
}

Tensor as_f32(const Tensor& t) {
  Tensor host = t.device() == Device::cpu ? t : t.to(Device::cpu);
  return host.dtype() == DType::f32 ? host : host.to_dtype(DType::f32);
}

}  // namespace

std::string hf_name_of(const std::string& name) {
  if (name == "tok_embeddings.weight") return "model.embed_tokens.weight";
  if (name == "norm.weight") return "model.norm.weight";
  if (name == "output.weight") return "lm_head.weight";
  int layer = 0;
  std::string suffix;
  if (split_layer_name(name, layer, suffix)) {
    for (const Suffix& s : kLayerSuffixes) {
      if (suffix == s.difftx) return fmt::format("model.layers.{}.{}", layer, s.hf);
    }
  }
  fail("parameter '{}' has no Hugging Face counterpart", name);
}

NamedTensors to_hf_tensors(const ModelConfig& c, const ParamSet& params) {
  const HfHeads heads = hf_heads_for(c);  // refuses DIFF V2
  const RowMap q_rows = export_q_rows(c), k_rows = export_k_rows(c), v_rows = export_v_rows(c);
  NamedTensors out;
  for (const ParamSpec& spec : parameter_specs(c)) {
    if (ends_with(spec.name, "attn.head_norm.weight")) continue;  // folded into o_proj below
    Tensor t = as_f32(params.at(spec.name));
    if (ends_with(spec.name, "attn.wq.weight"))
      t = gather_rows(t, q_rows);
    else if (ends_with(spec.name, "attn.wk.weight"))
      t = gather_rows(t, k_rows);
    else if (ends_with(spec.name, "attn.wv.weight"))
      t = gather_rows(t, v_rows);
    else if (ends_with(spec.name, "attn.wo.weight") && heads.diff && c.head_norm_gain) {
      const std::string gain_name =
          spec.name.substr(0, spec.name.size() - std::string("attn.wo.weight").size()) +
          "attn.head_norm.weight";
      t = scale_columns(t, as_f32(params.at(gain_name)), 2 * std::int64_t(c.head_dim));
    } else {
      t = t.clone();
    }
    out.emplace_back(hf_name_of(spec.name), t);
  }
  return out;
}

ParamSet from_hf_tensors(const ModelConfig& c, const HfHeads& heads, const HfTensorSet& set) {
  DIFFTX_CHECK(!(c.attention == AttentionKind::diff_v1 && c.head_norm_gain),
               "an imported DiffLlama config has no per-head norm gain");
  const std::int64_t E = c.d_model, D = heads.head_dim;
  const RowMap q_rows = import_q_rows(c, heads), k_rows = import_k_rows(c, heads),
               v_rows = import_v_rows(c, heads);
  std::set<std::string> used;
  auto origin = [&](const std::string& hf) {
    auto it = set.origin.find(hf);
    return it == set.origin.end() ? set.where : it->second;
  };
  auto fetch = [&](const std::string& hf, const Shape& shape) -> const Tensor& {
    auto it = set.tensors.find(hf);
    if (it == set.tensors.end()) {
      fail("{}: tensor '{}' is missing (the {}-layer config in config.json needs it)", set.where,
           hf, c.n_layers);
    }
    const Tensor& t = it->second;
    if (t.shape() != shape) {
      fail("{}: tensor '{}' has shape {}, config.json implies {}", origin(hf), hf,
           shape_string(t.shape()), shape_string(shape));
    }
    DIFFTX_CHECK(t.dtype() == DType::f32 && t.device() == Device::cpu,
                 "internal error: HF tensor '{}' is {}", hf, t.describe());
    const float* p = t.data<float>();
    for (std::int64_t i = 0; i < t.numel(); ++i) {
      if (!std::isfinite(p[i]))
        fail("{}: tensor '{}' holds a non-finite value at {}", origin(hf), hf, i);
    }
    used.insert(hf);
    return t;
  };

  ParamSet params;
  for (const ParamSpec& spec : parameter_specs(c)) {
    const std::string hf = hf_name_of(spec.name);
    Shape hf_shape = spec.shape;
    const RowMap* rows = nullptr;
    if (ends_with(spec.name, "attn.wq.weight")) {
      hf_shape = {heads.heads * D, E};
      rows = &q_rows;
    } else if (ends_with(spec.name, "attn.wk.weight")) {
      hf_shape = {heads.kv_heads * D, E};
      rows = &k_rows;
    } else if (ends_with(spec.name, "attn.wv.weight")) {
      hf_shape = {heads.kv_heads * D, E};
      rows = &v_rows;
    }
    const Tensor& t = fetch(hf, hf_shape);
    params.add(spec.name, rows ? gather_rows(t, *rows) : t.clone());
  }

  if (c.tied_embeddings && set.tensors.count("lm_head.weight")) {
    const Tensor& emb = params.at("tok_embeddings.weight");
    const Tensor& head = fetch("lm_head.weight", emb.shape());
    if (std::memcmp(emb.raw(), head.raw(), emb.nbytes()) != 0) {
      fail(
          "{}: tie_word_embeddings is true but tensor 'lm_head.weight' differs from "
          "'model.embed_tokens.weight': set tie_word_embeddings to false in config.json to keep "
          "a separate output head",
          origin("lm_head.weight"));
    }
  }
  for (const auto& [name, t] : set.tensors) {
    if (used.count(name) || ends_with(name, "rotary_emb.inv_freq")) continue;
    fail("{}: unexpected tensor '{}' (shape {}) for a {} model with this config.json", origin(name),
         name, shape_string(t.shape()), heads.diff ? "DiffLlama" : "Llama");
  }
  return params;
}

}  // namespace difftx::hf
