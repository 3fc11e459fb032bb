// Parameter names per layer, counts (from the specs and in closed form) and ParamSet. The specs
// themselves come from the parameter table (weights.cpp).
#include "difftx/model/params.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <thread>
#include <vector>

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

namespace {

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Normal(0, 1) sample i of the stream `key`: two uniforms from the hash, Box-Muller (cosine).
double counter_normal(std::uint64_t key, std::uint64_t i) {
  const double u1 = (double((splitmix64(key + 2 * i) >> 11) + 1)) * 0x1.0p-53;  // (0, 1]
  const double u2 = double(splitmix64(key + 2 * i + 1) >> 11) * 0x1.0p-53;      // [0, 1)
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

double init_std(const ModelConfig& config, ParamInit init) {
  switch (init) {
    case ParamInit::normal:
      return config.init_std;
    case ParamInit::normal_residual:
      return config.init_std / std::sqrt(2.0 * config.n_layers);
    case ParamInit::normal_lambda:
      return config.lambda_init_std;
    case ParamInit::ones:
    case ParamInit::zeros:
      break;
  }
  return 0.0;
}

}  // namespace

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
  for (const auto& s : parameter_specs(config)) {
    Tensor host = Tensor::empty(s.shape, DType::f64, Device::cpu);
    double* p = host.data<double>();
    const double std = init_std(config, s.init);
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

ParamSet ParamSet::initialised_parallel(const ModelConfig& config, std::uint64_t seed, DType dtype,
                                        Device device, int threads) {
  const int workers =
      threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ParamSet set;
  const std::vector<ParamSpec> specs = parameter_specs(config);
  for (std::size_t t = 0; t < specs.size(); ++t) {
    const ParamSpec& s = specs[t];
    Tensor host = Tensor::empty(s.shape, DType::f32, Device::cpu);
    float* p = host.data<float>();
    const std::int64_t n = host.numel();
    const double std = init_std(config, s.init);
    const std::uint64_t key = splitmix64(seed ^ splitmix64(t + 1));
    auto fill = [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        p[i] = static_cast<float>(std * counter_normal(key, static_cast<std::uint64_t>(i)));
      }
    };
    const std::int64_t parts = std::min<std::int64_t>(workers, (n + (1 << 16) - 1) >> 16);
    if (s.init == ParamInit::ones || s.init == ParamInit::zeros) {
      std::fill(p, p + n, s.init == ParamInit::ones ? 1.f : 0.f);
    } else if (parts <= 1) {
      fill(0, n);
    } else {
      std::vector<std::thread> pool;
      for (std::int64_t w = 0; w < parts; ++w) {
        pool.emplace_back(fill, n * w / parts, n * (w + 1) / parts);
      }
      for (auto& th : pool) th.join();
    }
    Tensor typed = dtype == DType::f32 ? host : host.to_dtype(dtype);
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
