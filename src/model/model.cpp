// Model construction, weights, activation buffers, and the training/eval entry points.
#include "difftx/model/model.h"

#include <cmath>

#include "model_activations.h"

namespace difftx {

Model::Model(ModelConfig config, Backend& backend, ParamSet params)
    : config_(std::move(config)), backend_(backend), params_(std::move(params)) {
  config_.validate("model config");
  const auto specs = parameter_specs(config_);
  for (const auto& s : specs) {
    if (!params_.contains(s.name)) fail("parameters lack tensor '{}'", s.name);
    const Tensor& t = params_.at(s.name);
    if (t.shape() != s.shape) {
      fail("parameter '{}' has shape {}, the config needs {}", s.name, shape_string(t.shape()),
           shape_string(s.shape));
    }
    DIFFTX_CHECK(t.dtype() == backend_.param_dtype() && t.device() == backend_.device(),
                 "parameter '{}' is {}, the {} backend needs {} on {}", s.name, t.describe(),
                 backend_.name(), dtype_name(backend_.param_dtype()), device_name(backend_.device()));
  }
  DIFFTX_CHECK(params_.size() == specs.size(), "parameters hold {} tensors, the config has {}",
               params_.size(), specs.size());
  grads_ = ParamSet::zeros_like_specs(specs, backend_.param_dtype(), backend_.device());
  if (backend_.act_dtype() != backend_.param_dtype()) {
    for (const auto& s : specs) {
      if (s.shape.size() == 2) {
        compute_.add(s.name, Tensor::empty(s.shape, backend_.act_dtype(), backend_.device()));
      }
    }
  }
  refresh_compute_weights();
}

Model::~Model() = default;

void Model::zero_grads() {
  for (std::size_t i = 0; i < grads_.size(); ++i) backend_.fill(grads_.tensor(i), 0.0);
}

void Model::refresh_compute_weights() {
  for (std::size_t i = 0; i < compute_.size(); ++i) {
    backend_.convert(params_.at(compute_.name(i)), compute_.tensor(i));
  }
}

const Tensor& Model::weight(const std::string& name) const {
  if (compute_.contains(name)) return compute_.at(name);
  return params_.at(name);
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

namespace {

void check_tokens(const Tensor& t, const char* what, const ModelConfig& c) {
  DIFFTX_CHECK(t.defined() && t.ndim() == 2 && t.dtype() == DType::i32 && t.device() == Device::cpu,
               "{} must be host (B, T) i32 tokens, got {}", what, t.defined() ? t.describe() : "nothing");
  DIFFTX_CHECK(t.dim(1) <= c.max_seq_len, "{} has {} tokens per row, the model's max_seq_len is {}",
               what, t.dim(1), c.max_seq_len);
}

}  // namespace

double Model::forward_backward(const Tensor& inputs, const Tensor& targets, double grad_scale) {
  check_tokens(inputs, "inputs", config_);
  check_tokens(targets, "targets", config_);
  DIFFTX_CHECK(inputs.shape() == targets.shape(), "inputs {} and targets {} differ in shape",
               shape_string(inputs.shape()), shape_string(targets.shape()));
  const int batch = int(inputs.dim(0)), seq = int(inputs.dim(1));
  forward(inputs, batch, seq);
  Activations& a = *acts_;
  const std::int32_t* tg = targets.data<std::int32_t>();
  std::int64_t counted = 0;
  for (std::int64_t i = 0; i < targets.numel(); ++i) counted += tg[i] >= 0;
  DIFFTX_CHECK(counted > 0, "every target is ignored (negative): nothing to learn from");
  a.targets.copy_from(targets.reshape({targets.numel()}));
  backend_.cross_entropy_forward_backward(a.logits, a.targets, float(grad_scale / double(counted)),
                                          a.losses, a.logits);
  double loss = 0;
  for (double x : a.losses.to_double_vector()) loss += x;
  loss /= double(counted);

  const std::int64_t N = std::int64_t(batch) * seq;
  const std::int64_t E = config_.d_model;
  const std::string out_name = config_.tied_embeddings ? "tok_embeddings.weight" : "output.weight";
  backend_.linear_backward(a.xf, weight(out_name), a.logits, a.dtmp, grads_.at(out_name), false);
  Tensor& dnorm = grads_.at("norm.weight");
  backend_.rmsnorm_backward(a.resid[config_.n_layers], params_.at("norm.weight"), a.rstdf, 1.0,
                            a.dtmp, a.dresid, &dnorm);
  for (int l = config_.n_layers - 1; l >= 0; --l) {
    LayerActivations& la = a.layers[l];
    auto P = [&](const char* s) { return layer_param(l, s); };
    // FFN block: resid[l+1] = y + W_down(silu(W_gate xn2) * W_up xn2), xn2 = norm(y).
    backend_.linear_backward(la.hsw, weight(P("ffn.w_down.weight")), a.dresid, a.dhsw,
                             grads_.at(P("ffn.w_down.weight")), false);
    backend_.swiglu_backward(la.gate, la.up, a.dhsw, a.dgate, a.dup);
    backend_.linear_backward(la.xn2, weight(P("ffn.w_gate.weight")), a.dgate, a.dxn,
                             grads_.at(P("ffn.w_gate.weight")), false);
    backend_.linear_backward(la.xn2, weight(P("ffn.w_up.weight")), a.dup, a.dxn,
                             grads_.at(P("ffn.w_up.weight")), true);
    backend_.rmsnorm_backward(la.y, params_.at(P("ffn_norm.weight")), la.rstd2, 1.0, a.dxn, a.dy,
                              &grads_.at(P("ffn_norm.weight")));
    backend_.add_inplace(a.dy, a.dresid);  // dy: gradient w.r.t. y
    // Attention block: y = resid[l] + W_o(mixed).
    backend_.linear_backward(la.mixed, weight(P("attn.wo.weight")), a.dy, a.dmixed,
                             grads_.at(P("attn.wo.weight")), false);
    attention_backward(l, batch, seq);
    backend_.rmsnorm_backward(a.resid[l], params_.at(P("attn_norm.weight")), la.rstd1, 1.0, a.dxn,
                              a.dtmp, &grads_.at(P("attn_norm.weight")));
    backend_.add(a.dtmp, a.dy, a.dresid);  // gradient w.r.t. resid[l]
  }
  backend_.embedding_backward(a.ids, a.dresid.reshape({N, E}), grads_.at("tok_embeddings.weight"));
  return loss;
}

double Model::forward_loss(const Tensor& inputs, const Tensor& targets) {
  check_tokens(inputs, "inputs", config_);
  check_tokens(targets, "targets", config_);
  const int batch = int(inputs.dim(0)), seq = int(inputs.dim(1));
  forward(inputs, batch, seq);
  Activations& a = *acts_;
  a.targets.copy_from(targets.reshape({targets.numel()}));
  backend_.cross_entropy_forward(a.logits, a.targets, a.losses);
  const std::int32_t* tg = targets.data<std::int32_t>();
  double loss = 0;
  std::int64_t counted = 0;
  auto losses = a.losses.to_double_vector();
  for (std::size_t i = 0; i < losses.size(); ++i) {
    if (tg[i] >= 0) {
      loss += losses[i];
      ++counted;
    }
  }
  DIFFTX_CHECK(counted > 0, "every target is ignored (negative): no loss to compute");
  return loss / double(counted);
}

Tensor Model::logits(const Tensor& inputs) {
  check_tokens(inputs, "inputs", config_);
  const int batch = int(inputs.dim(0)), seq = int(inputs.dim(1));
  forward(inputs, batch, seq);
  Tensor host = acts_->logits.to(Device::cpu);
  DType out = backend_.param_dtype() == DType::f64 ? DType::f64 : DType::f32;
  return host.to_dtype(out).reshape({batch, seq, config_.vocab_size});
}

std::vector<double> Model::lambdas() const {
  std::vector<double> out;
  if (config_.attention != AttentionKind::diff_v1) return out;
  for (int l = 0; l < config_.n_layers; ++l) {
    auto get = [&](const char* s) { return params_.at(layer_param(l, s)).to_double_vector(); };
    auto q1 = get("attn.lambda_q1"), k1 = get("attn.lambda_k1");
    auto q2 = get("attn.lambda_q2"), k2 = get("attn.lambda_k2");
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
