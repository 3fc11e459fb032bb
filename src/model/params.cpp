// Parameter names per layer, counts (from the specs and in closed form) and ParamSet. The specs
// themselves come from the parameter table (weights.cpp).
#include "difftx/model/params.h"

#include <cmath>
#include <random>

namespace difftx {

std::string layer_param(int layer, const char* suffix) {
  return fmt::format("layers.{}.{}", layer, suffix);
}

std::int64_t parameter_count(const ModelConfig& config) {
  std::int64_t n = 0;
  for (const auto& s : parameter_specs(config)) n += shape_numel(s.shape);
  return n;
}

std::int64_t parameter_count_formula(const ModelConfig& c) {
  // Per layer: attention projections E*(q_dim + k_dim + v_dim) + attn_out_dim*E, two norms 2E,
  // SwiGLU 3EF; DIFF V1 adds 4d (+2d gain); DIFF V2 adds hE. Plus embeddings VE, final norm E,
  // untied head VE.
  const std::int64_t E = c.d_model, V = c.vocab_size, F = c.ffn_dim, d = c.head_dim, h = c.n_heads;
  std::int64_t attn = E * (c.q_dim() + c.k_dim() + c.v_dim()) + std::int64_t(c.attn_out_dim()) * E;
  std::int64_t extra = 0;
  if (c.attention == AttentionKind::diff_v1) extra = 4 * d + (c.head_norm_gain ? 2 * d : 0);
  if (c.attention == AttentionKind::diff_v2) extra = h * E;
  std::int64_t layer = attn + extra + 2 * E + 3 * E * F;
  return V * E + c.n_layers * layer + E + (c.tied_embeddings ? 0 : V * E);
}

ParamSet ParamSet::zeros_like_specs(const std::vector<ParamSpec>& specs, DType dtype,
                                    Device device) {
  ParamSet set;
  for (const auto& s : specs) set.add(s.name, Tensor::zeros(s.shape, dtype, device));
  return set;
}

ParamSet ParamSet::initialised(const ModelConfig& config, std::uint64_t seed, DType dtype,
                               Device device) {
  ParamSet set;
  std::mt19937_64 rng(seed);
  const double residual_std = config.init_std / std::sqrt(2.0 * config.n_layers);
  for (const auto& s : parameter_specs(config)) {
    Tensor host = Tensor::empty(s.shape, DType::f64, Device::cpu);
    double* p = host.data<double>();
    double std = 0.0;
    switch (s.init) {
      case ParamInit::normal:
        std = config.init_std;
        break;
      case ParamInit::normal_residual:
        std = residual_std;
        break;
      case ParamInit::normal_lambda:
        std = config.lambda_init_std;
        break;
      case ParamInit::ones:
      case ParamInit::zeros:
        break;
    }
    std::normal_distribution<double> normal(0.0, 1.0);
    for (std::int64_t i = 0; i < host.numel(); ++i) {
      if (s.init == ParamInit::ones)
        p[i] = 1.0;
      else if (s.init == ParamInit::zeros)
        p[i] = 0.0;
      else
        p[i] = std * normal(rng);
    }
    Tensor typed = host.to_dtype(dtype);
    set.add(s.name, device == Device::cpu ? typed : typed.to(device));
  }
  return set;
}

void ParamSet::add(const std::string& name, Tensor tensor) {
  DIFFTX_CHECK(!index_.count(name), "duplicate parameter '{}'", name);
  index_[name] = tensors_.size();
  names_.push_back(name);
  tensors_.push_back(std::move(tensor));
}

Tensor& ParamSet::at(const std::string& name) {
  auto it = index_.find(name);
  if (it == index_.end()) fail("no parameter named '{}'", name);
  return tensors_[it->second];
}

const Tensor& ParamSet::at(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("no parameter named '{}'", name);
  return tensors_[it->second];
}

std::int64_t ParamSet::numel() const {
  std::int64_t n = 0;
  for (const auto& t : tensors_) n += t.numel();
  return n;
}

}  // namespace difftx
