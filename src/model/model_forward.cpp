// Model forward pass over a full sequence, and the attention block's forward and backward for
// each attention kind (the only place where DIFF V1, DIFF V2 and the baseline differ).
#include <cmath>

#include "difftx/model/model.h"
#include "difftx/model/probe.h"
#include "model_activations.h"

namespace difftx {

void Model::forward(const Tensor& inputs_host, int batch, int seq) {
  Activations& a = activations(batch, seq);
  a.ids.copy_from(inputs_host.reshape({std::int64_t(batch) * seq}));
  forward_layers(batch, seq, 0, nullptr);
}

// Embedding -> layers -> final norm -> logits over the ids already in the activations. With a
// cache (decoding, batch 1) the tokens sit at positions pos_offset.. and attend to the cache.
void Model::forward_layers(int batch, int seq, int pos_offset, KvCache* cache) {
  Activations& a = *acts_;
  backend_.embedding_forward(a.ids, weight("tok_embeddings.weight"), a.resid[0]);
  for (int l = 0; l < config_.n_layers; ++l) {
    LayerActivations& la = a.layers[l];
    auto P = [&](const char* s) { return layer_param(l, s); };
    backend_.rmsnorm_forward(a.resid[l], params_.at(P("attn_norm.weight")), config_.norm_eps, 1.0,
                             la.xn1, la.rstd1);
    attention_forward(l, batch, seq, pos_offset, cache);
    backend_.linear_forward(la.mixed, weight(P("attn.wo.weight")), a.tmp_e);
    backend_.add(a.resid[l], a.tmp_e, la.y);
    backend_.rmsnorm_forward(la.y, params_.at(P("ffn_norm.weight")), config_.norm_eps, 1.0, la.xn2,
                             la.rstd2);
    backend_.linear_forward(la.xn2, weight(P("ffn.w_gate.weight")), la.gate);
    backend_.linear_forward(la.xn2, weight(P("ffn.w_up.weight")), la.up);
    backend_.swiglu_forward(la.gate, la.up, la.hsw);
    backend_.linear_forward(la.hsw, weight(P("ffn.w_down.weight")), a.tmp_e);
    backend_.add(la.y, a.tmp_e, a.resid[l + 1]);
    if (probe_ && probe_->observer) probe_->observer->on_hidden(l, a.resid[l + 1]);  // (N, E)
  }
  backend_.rmsnorm_forward(a.resid[config_.n_layers], params_.at("norm.weight"), config_.norm_eps,
                           1.0, a.xf, a.rstdf);
  const char* out_name = config_.tied_embeddings ? "tok_embeddings.weight" : "output.weight";
  backend_.linear_forward(a.xf, weight(out_name), a.logits);
}

void Model::attention_forward(int l, int batch, int seq, int pos_offset, KvCache* cache) {
  Activations& a = *acts_;
  LayerActivations& la = a.layers[l];
  auto P = [&](const char* s) { return layer_param(l, s); };
  const int d = config_.head_dim;
  backend_.linear_forward(la.xn1, weight(P("attn.wq.weight")), la.q);  // (N, q_heads * d)
  backend_.linear_forward(la.xn1, weight(P("attn.wk.weight")), la.k);  // (N, k_heads * d)
  backend_.linear_forward(la.xn1, weight(P("attn.wv.weight")), la.v);  // (N, h_kv * dv)
  backend_.rope(la.q, batch, seq, config_.q_heads(), d, config_.q_dim(), pos_offset,
                config_.rope_theta, config_.rope_style, false);
  backend_.rope(la.k, batch, seq, config_.k_heads(), d, config_.k_dim(), pos_offset,
                config_.rope_theta, config_.rope_style, false);
  // Keys and values: this call's own, or (decoding) the cache with this call's appended.
  Tensor keys = la.k, values = la.v, out2 = la.att2;
  AttentionGeometry g = geometry(batch, seq, seq, 0);
  if (cache) {
    const int total = pos_offset + seq;
    cache->k_[l].rows(pos_offset, total).copy_from(la.k);
    cache->v_[l].rows(pos_offset, total).copy_from(la.v);
    keys = cache->k_[l].rows(0, total);    // (S, k_dim)
    values = cache->v_[l].rows(0, total);  // (S, v_dim)
    out2 = Tensor();                       // A2 V is kept only for the backward
    g = geometry(batch, seq, total, pos_offset);
  }
  if (probe_) {  // the evaluation probes' materialized attention instead of the fused ops
    probe_attention(l, batch, seq, g, keys, values);
    return;
  }
  switch (config_.attention) {
    case AttentionKind::diff_v1: {
      const double init = lambda_init(l);
      backend_.diff_lambda_forward(params_.at(P("attn.lambda_q1")), params_.at(P("attn.lambda_k1")),
                                   params_.at(P("attn.lambda_q2")), params_.at(P("attn.lambda_k2")),
                                   init, la.lambda);
      backend_.diff_attention_forward(g, la.q, keys, values, la.lambda, la.att, out2, la.lse);
      // Per-head RMSNorm over 2d channels, times (1 - lambda_init): rows are (token, head).
      const std::int64_t rows = std::int64_t(batch) * seq * config_.n_heads;
      Tensor gain = config_.head_norm_gain ? params_.at(P("attn.head_norm.weight")) : Tensor();
      Tensor mixed = la.mixed.reshape({rows, 2 * d});
      backend_.rmsnorm_forward(la.att.reshape({rows, 2 * d}), gain, config_.norm_eps, 1.0 - init,
                               mixed, la.head_rstd);
      break;
    }
    case AttentionKind::diff_v2:
      backend_.linear_forward(la.xn1, weight(P("attn.wlambda.weight")), la.gate_logits);  // (N, h)
      backend_.diff_v2_attention_forward(g, la.q, keys, values, la.gate_logits, la.att, la.lse,
                                         la.mixed);
      break;
    case AttentionKind::softmax:
      backend_.softmax_attention_forward(g, la.q, keys, values, la.mixed, la.lse);
      break;
  }
}

// Input: a.dmixed = dL/d(mixed). Output: a.dxn = dL/d(xn1). Parameter gradients accumulated.
void Model::attention_backward(int l, int batch, int seq) {
  Activations& a = *acts_;
  LayerActivations& la = a.layers[l];
  auto P = [&](const char* s) { return layer_param(l, s); };
  const int d = config_.head_dim;
  const AttentionGeometry g = geometry(batch, seq, seq, 0);
  switch (config_.attention) {
    case AttentionKind::diff_v1: {
      const double init = lambda_init(l);
      const std::int64_t rows = std::int64_t(batch) * seq * config_.n_heads;
      Tensor gain = config_.head_norm_gain ? params_.at(P("attn.head_norm.weight")) : Tensor();
      Tensor* dgain = config_.head_norm_gain ? &grads_.at(P("attn.head_norm.weight")) : nullptr;
      Tensor datt = a.datt.reshape({rows, 2 * d});
      backend_.rmsnorm_backward(la.att.reshape({rows, 2 * d}), gain, la.head_rstd, 1.0 - init,
                                a.dmixed.reshape({rows, 2 * d}), datt, dgain);
      backend_.fill(a.dlambda, 0.0);
      backend_.diff_attention_backward(g, la.q, la.k, la.v, la.lambda, la.att, la.att2, la.lse,
                                       a.datt, a.dq, a.dk, a.dv, a.dlambda);
      backend_.diff_lambda_backward(
          params_.at(P("attn.lambda_q1")), params_.at(P("attn.lambda_k1")),
          params_.at(P("attn.lambda_q2")), params_.at(P("attn.lambda_k2")), a.dlambda,
          grads_.at(P("attn.lambda_q1")), grads_.at(P("attn.lambda_k1")),
          grads_.at(P("attn.lambda_q2")), grads_.at(P("attn.lambda_k2")));
      break;
    }
    case AttentionKind::diff_v2:
      backend_.v2_combine_backward(la.att, la.gate_logits, a.dmixed, a.datt, a.dgate_logits);
      backend_.softmax_attention_backward(g, la.q, la.k, la.v, la.att, la.lse, a.datt, a.dq, a.dk,
                                          a.dv);
      break;
    case AttentionKind::softmax:
      backend_.softmax_attention_backward(g, la.q, la.k, la.v, la.mixed, la.lse, a.dmixed, a.dq,
                                          a.dk, a.dv);
      break;
  }
  // Gradients w.r.t. the pre-RoPE projections: apply the inverse rotation.
  backend_.rope(a.dq, batch, seq, config_.q_heads(), d, config_.q_dim(), 0, config_.rope_theta,
                config_.rope_style, true);
  backend_.rope(a.dk, batch, seq, config_.k_heads(), d, config_.k_dim(), 0, config_.rope_theta,
                config_.rope_style, true);
  backend_.linear_backward(la.xn1, weight(P("attn.wq.weight")), a.dq, a.dxn,
                           grads_.at(P("attn.wq.weight")), false);
  backend_.linear_backward(la.xn1, weight(P("attn.wk.weight")), a.dk, a.dxn,
                           grads_.at(P("attn.wk.weight")), true);
  backend_.linear_backward(la.xn1, weight(P("attn.wv.weight")), a.dv, a.dxn,
                           grads_.at(P("attn.wv.weight")), true);
  if (config_.attention == AttentionKind::diff_v2) {
    backend_.linear_backward(la.xn1, weight(P("attn.wlambda.weight")), a.dgate_logits, a.dxn,
                             grads_.at(P("attn.wlambda.weight")), true);
  }
}

}  // namespace difftx
