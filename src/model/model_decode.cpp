// Incremental decoding with a key/value cache (batch 1): each call feeds new tokens, appends
// their keys/values to the cache and returns their logits; attention sees the whole prefix.
#include <cmath>

#include "difftx/model/model.h"
#include "model_activations.h"

namespace difftx {

KvCache::KvCache(const Model& model, int capacity) : capacity_(capacity) {
  const ModelConfig& c = model.config();
  DIFFTX_CHECK(capacity > 0 && capacity <= c.max_seq_len,
               "KV cache capacity {} must be in [1, max_seq_len = {}]", capacity, c.max_seq_len);
  Model& m = const_cast<Model&>(model);
  for (int l = 0; l < c.n_layers; ++l) {
    k_.push_back(Tensor::zeros({capacity, c.k_dim()}, m.backend().act_dtype(), m.backend().device()));
    v_.push_back(Tensor::zeros({capacity, c.v_dim()}, m.backend().act_dtype(), m.backend().device()));
  }
}

Tensor Model::decode(KvCache& cache, const std::vector<std::int32_t>& tokens) {
  const int n = static_cast<int>(tokens.size());
  DIFFTX_CHECK(n > 0, "decode needs at least one token");
  DIFFTX_CHECK(cache.length_ + n <= cache.capacity_,
               "the KV cache holds {} of {} positions; {} more do not fit (raise the capacity or "
               "shorten the prompt)", cache.length_, cache.capacity_, n);
  const int past = cache.length_, total = past + n, d = config_.head_dim;
  Tensor host_ids = Tensor::empty({1, n}, DType::i32);
  for (int i = 0; i < n; ++i) {
    DIFFTX_CHECK(tokens[i] >= 0 && tokens[i] < config_.vocab_size,
                 "token id {} is outside the vocabulary [0, {})", tokens[i], config_.vocab_size);
    host_ids.data<std::int32_t>()[i] = tokens[i];
  }
  // Decoding reuses the activation buffers sized for (1, n).
  Activations& a = activations(1, n);
  a.ids.copy_from(host_ids.reshape({n}));
  backend_.embedding_forward(a.ids, weight("tok_embeddings.weight"), a.resid[0]);
  AttentionGeometry g = geometry(1, n, total, past);
  for (int l = 0; l < config_.n_layers; ++l) {
    LayerActivations& la = a.layers[l];
    auto P = [&](const char* s) { return layer_param(l, s); };
    backend_.rmsnorm_forward(a.resid[l], params_.at(P("attn_norm.weight")), config_.norm_eps, 1.0,
                             la.xn1, la.rstd1);
    backend_.linear_forward(la.xn1, weight(P("attn.wq.weight")), la.q);
    backend_.linear_forward(la.xn1, weight(P("attn.wk.weight")), la.k);
    backend_.linear_forward(la.xn1, weight(P("attn.wv.weight")), la.v);
    backend_.rope(la.q, 1, n, config_.q_heads(), d, config_.q_dim(), past, config_.rope_theta,
                  config_.rope_style, false);
    backend_.rope(la.k, 1, n, config_.k_heads(), d, config_.k_dim(), past, config_.rope_theta,
                  config_.rope_style, false);
    Tensor k_new = cache.k_[l].rows(past, total);
    Tensor v_new = cache.v_[l].rows(past, total);
    k_new.copy_from(la.k);
    v_new.copy_from(la.v);
    Tensor k_all = cache.k_[l].rows(0, total);  // (S, k_dim)
    Tensor v_all = cache.v_[l].rows(0, total);  // (S, v_dim)
    switch (config_.attention) {
      case AttentionKind::diff_v1: {
        const double init = lambda_init(l);
        backend_.diff_lambda_forward(params_.at(P("attn.lambda_q1")),
                                     params_.at(P("attn.lambda_k1")),
                                     params_.at(P("attn.lambda_q2")),
                                     params_.at(P("attn.lambda_k2")), init, la.lambda);
        Tensor no_out2;
        backend_.diff_attention_forward(g, la.q, k_all, v_all, la.lambda, la.att, no_out2, la.lse);
        const std::int64_t rows = std::int64_t(n) * config_.n_heads;
        Tensor gain = config_.head_norm_gain ? params_.at(P("attn.head_norm.weight")) : Tensor();
        Tensor mixed = la.mixed.reshape({rows, 2 * d});
        backend_.rmsnorm_forward(la.att.reshape({rows, 2 * d}), gain, config_.norm_eps, 1.0 - init,
                                 mixed, la.head_rstd);
        break;
      }
      case AttentionKind::diff_v2:
        backend_.softmax_attention_forward(g, la.q, k_all, v_all, la.att, la.lse);
        backend_.linear_forward(la.xn1, weight(P("attn.wlambda.weight")), la.gate_logits);
        backend_.v2_combine_forward(la.att, la.gate_logits, la.mixed);
        break;
      case AttentionKind::softmax:
        backend_.softmax_attention_forward(g, la.q, k_all, v_all, la.mixed, la.lse);
        break;
    }
    backend_.linear_forward(la.mixed, weight(P("attn.wo.weight")), a.tmp_e);
    backend_.add(a.resid[l], a.tmp_e, la.y);
    backend_.rmsnorm_forward(la.y, params_.at(P("ffn_norm.weight")), config_.norm_eps, 1.0, la.xn2,
                             la.rstd2);
    backend_.linear_forward(la.xn2, weight(P("ffn.w_gate.weight")), la.gate);
    backend_.linear_forward(la.xn2, weight(P("ffn.w_up.weight")), la.up);
    backend_.swiglu_forward(la.gate, la.up, la.hsw);
    backend_.linear_forward(la.hsw, weight(P("ffn.w_down.weight")), a.tmp_e);
    backend_.add(la.y, a.tmp_e, a.resid[l + 1]);
  }
  backend_.rmsnorm_forward(a.resid[config_.n_layers], params_.at("norm.weight"), config_.norm_eps,
                           1.0, a.xf, a.rstdf);
  const char* out_name = config_.tied_embeddings ? "tok_embeddings.weight" : "output.weight";
  backend_.linear_forward(a.xf, weight(out_name), a.logits);
  cache.length_ = total;
  DType out = backend_.param_dtype() == DType::f64 ? DType::f64 : DType::f32;
  return a.logits.to(Device::cpu).to_dtype(out).reshape({n, config_.vocab_size});
}

}  // namespace difftx
