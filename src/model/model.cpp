// Model construction: the typed weight views (masters, gradients, compute copies), their
// refresh after an optimizer step, and the activation buffers sized per (B, T).
#include "difftx/model/model.h"

#include <cmath>

#include "model_activations.h"

namespace difftx {

namespace {

// Every tensor of `set` in spec order with the backend's param dtype on its device.
void check_set(const ParamSet& set, const std::vector<ParamSpec>& specs, const Backend& backend,
               const char* what) {
  DIFFTX_CHECK(set.size() == specs.size(), "{} hold {} tensors, the config has {}", what,
               set.size(), specs.size());
  for (std::size_t i = 0; i < set.size(); ++i) {
    const Tensor& t = set.tensor(i);
    DIFFTX_CHECK(set.name(i) == specs[i].name, "{}: tensor {} is '{}', the config's is '{}'", what,
                 i, set.name(i), specs[i].name);
    DIFFTX_CHECK(t.dtype() == backend.param_dtype() && t.device() == backend.device(),
                 "{}: '{}' is {}, the {} backend needs {} on {}", what, set.name(i), t.describe(),
                 backend.name(), dtype_name(backend.param_dtype()), device_name(backend.device()));
  }
}

}  // namespace

std::vector<std::vector<std::size_t>> gradients_ready_order(const ModelConfig& config) {
  const auto specs = parameter_specs(config);
  const std::size_t L = std::size_t(config.n_layers);
  std::vector<std::vector<std::size_t>> groups(L + 2);
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const std::string& name = specs[i].name;
    std::size_t group = 0;  // norm.weight and an untied output.weight
    if (name == "tok_embeddings.weight") {
      group = L + 1;
    } else if (name.rfind("layers.", 0) == 0) {
      const std::size_t layer = std::stoul(name.substr(7));
      DIFFTX_CHECK(layer < L, "parameter '{}' names a layer the config lacks", name);
      group = 1 + (L - 1 - layer);
    }
    groups[group].push_back(i);
  }
  return groups;
}

Model::Model(ModelConfig config, Backend& backend, ParamSet params)
    : Model(std::move(config), backend, std::move(params), ParamSet()) {}

Model::Model(ModelConfig config, Backend& backend, ParamSet params, ParamSet grads)
    : config_(std::move(config)), backend_(backend), params_(std::move(params)) {
  config_.validate("model config");
  const auto specs = parameter_specs(config_);
  masters_ = bind_weights(config_, params_);  // checks every name and shape
  check_set(params_, specs, backend_, "parameters");
  if (grads.size() == 0) {
    grads_ = ParamSet::zeros_like_specs(specs, backend_.param_dtype(), backend_.device());
  } else {
    grads_ = std::move(grads);
    check_set(grads_, specs, backend_, "gradient storage");
    zero_grads();
  }
  gradients_ = bind_weights(config_, grads_);  // checks the gradients' shapes
  ready_groups_ = gradients_ready_order(config_);
  // The passes read matrices in the activation dtype (copies when it differs from the param
  // dtype) and vectors (norm gains, lambdas) as the masters themselves.
  const bool convert = backend_.act_dtype() != backend_.param_dtype();
  ParamSet compute;
  for (const auto& s : specs) {
    const Tensor& master = params_.at(s.name);
    if (convert && s.shape.size() == 2) {
      Tensor copy = Tensor::empty(s.shape, backend_.act_dtype(), backend_.device());
      converted_.emplace_back(master, copy);
      compute.add(s.name, copy);
    } else {
      compute.add(s.name, master);
    }
  }
  weights_ = bind_weights(config_, compute);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    bound_.push_back({params_.tensor(i).raw(), grads_.tensor(i).raw()});
  }
  refresh_compute_weights();
}

Model::~Model() = default;

void Model::zero_grads() {
  for (std::size_t i = 0; i < grads_.size(); ++i) backend_.fill(grads_.tensor(i), 0.0);
}

void Model::refresh_compute_weights() {
  // The typed views share the sets' storage; a tensor replaced instead of written in place would
  // silently detach from them.
  for (std::size_t i = 0; i < params_.size(); ++i) {
    DIFFTX_CHECK(
        params_.tensor(i).raw() == bound_[i].first && grads_.tensor(i).raw() == bound_[i].second,
        "parameter '{}' (or its gradient) was replaced after the model was built; write "
        "into the tensor in place instead",
        params_.name(i));
  }
  for (auto& [master, copy] : converted_) backend_.convert(master, copy);
}

AttentionGeometry Model::geometry(int batch, int seq, int kv_len, int q_offset) const {
  return packed_attention_geometry(batch, seq, kv_len, q_offset, config_.q_heads(),
                                   config_.k_heads(), config_.n_kv_heads, config_.head_dim,
                                   config_.v_head_dim());
}

Model::Activations& Model::activations(int batch, int seq) {
  if (acts_ && acts_->batch == batch && acts_->seq == seq) return *acts_;
  acts_.reset();  // free the old buffers before allocating new ones
  auto a = std::make_unique<Activations>();
  const std::int64_t N = std::int64_t(batch) * seq;
  const std::int64_t E = config_.d_model, F = config_.ffn_dim, V = config_.vocab_size;
  const int h = config_.n_heads;
  const Device dev = backend_.device();
  const DType act = backend_.act_dtype(), stat = backend_.param_dtype();
  auto A = [&](Shape s) { return Tensor::empty(std::move(s), act, dev); };
  auto S = [&](Shape s) { return Tensor::empty(std::move(s), stat, dev); };
  a->batch = batch;
  a->seq = seq;
  a->ids = Tensor::empty({N}, DType::i32, dev);
  a->targets = Tensor::empty({N}, DType::i32, dev);
  for (int l = 0; l <= config_.n_layers; ++l) a->resid.push_back(A({N, E}));
  const std::int64_t att_width = config_.attention == AttentionKind::diff_v2
                                     ? std::int64_t(config_.q_dim())
                                     : std::int64_t(config_.attn_out_dim());
  for (int l = 0; l < config_.n_layers; ++l) {
    LayerActivations la;
    la.rstd1 = S({N});
    la.xn1 = A({N, E});
    la.q = A({N, config_.q_dim()});
    la.k = A({N, config_.k_dim()});
    la.v = A({N, config_.v_dim()});
    la.mixed = A({N, config_.attn_out_dim()});
    la.lse = S({batch, config_.q_heads(), seq});
    switch (config_.attention) {
      case AttentionKind::diff_v1:
        la.att = A({N, h, config_.v_head_dim()});
        la.att2 = A({N, h, config_.v_head_dim()});
        la.lambda = S({1});
        la.head_rstd = S({N * h});
        break;
      case AttentionKind::diff_v2:
        la.att = A({N, att_width});
        la.gate_logits = A({N, h});
        break;
      case AttentionKind::softmax:
        la.att = la.mixed;
        break;
    }
    la.y = A({N, E});
    la.rstd2 = S({N});
    la.xn2 = A({N, E});
    la.gate = A({N, F});
    la.up = A({N, F});
    la.hsw = A({N, F});
    a->layers.push_back(std::move(la));
  }
  a->rstdf = S({N});
  a->xf = A({N, E});
  a->logits = A({N, V});
  a->losses = S({N});
  a->tmp_e = A({N, E});
  a->dresid = A({N, E});
  a->dy = A({N, E});
  a->dxn = A({N, E});
  a->dtmp = A({N, E});
  a->dmixed = A({N, config_.attn_out_dim()});
  a->datt = A({N, att_width});
  a->dq = A({N, config_.q_dim()});
  a->dk = A({N, config_.k_dim()});
  a->dv = A({N, config_.v_dim()});
  a->dhsw = A({N, F});
  a->dgate = A({N, F});
  a->dup = A({N, F});
  if (config_.attention == AttentionKind::diff_v2) a->dgate_logits = A({N, h});
  if (config_.attention == AttentionKind::diff_v1) a->dlambda = S({1});
  acts_ = std::move(a);
  return *acts_;
}

std::vector<double> Model::lambdas() const {
  std::vector<double> out;
  if (config_.attention != AttentionKind::diff_v1) return out;
  for (int l = 0; l < config_.n_layers; ++l) {
    const LayerWeights& w = masters_.layers[l];
    auto q1 = w.lambda_q1.to_double_vector(), k1 = w.lambda_k1.to_double_vector();  // (d)
    auto q2 = w.lambda_q2.to_double_vector(), k2 = w.lambda_k2.to_double_vector();  // (d)
    double d1 = 0, d2 = 0;
    for (std::size_t i = 0; i < q1.size(); ++i) {
      d1 += q1[i] * k1[i];
      d2 += q2[i] * k2[i];
    }
    out.push_back(std::exp(d1) - std::exp(d2) + lambda_init(l));
  }
  return out;
}

}  // namespace difftx
