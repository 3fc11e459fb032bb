// The attention block, forward and backward: projections and RoPE, then the one place where
// DIFF V1 (lambda-weighted difference of two softmax maps, per-head RMSNorm), DIFF V2 (softmax
// over 2h query heads, gated pair combine) and the softmax baseline differ.
// In: xn1 (N, E), the attention-block norm's output. Out: mixed (N, attn_out_dim), W_o's input.
#include "difftx/model/model.h"
#include "model_activations.h"

namespace difftx {

void Model::attention_forward(int l, int batch, int seq, int pos_offset, KvCache* cache) {
  LayerActivations& la = acts_->layers[l];
  const LayerWeights& w = weights_.layers[l];
  const int d = config_.head_dim;
  backend_.linear_forward(la.xn1, w.wq, la.q);  // (N, q_heads * d)
  backend_.linear_forward(la.xn1, w.wk, la.k);  // (N, k_heads * d)
  backend_.linear_forward(la.xn1, w.wv, la.v);  // (N, h_kv * dv)
  backend_.rope(la.q, batch, seq, config_.q_heads(), d, config_.q_dim(), pos_offset,
                config_.rope_theta, config_.rope_style, false);
  backend_.rope(la.k, batch, seq, config_.k_heads(), d, config_.k_dim(), pos_offset,
                config_.rope_theta, config_.rope_style, false);
  // Keys and values: this call's own, or (decoding) the cache with this call's appended.
  const AttentionKeys kv = cache ? cached_keys(*cache, l, seq, pos_offset)
                                 : AttentionKeys{la.k, la.v, la.att2, geometry(batch, seq, seq, 0)};
  if (probe_) {  // the evaluation probes' materialized attention instead of the fused ops
    probe_attention(l, batch, seq, kv);
    return;
  }
  switch (config_.attention) {
    case AttentionKind::diff_v1: {
      const double init = lambda_init(l);
      backend_.diff_lambda_forward(w.lambda_q1, w.lambda_k1, w.lambda_q2, w.lambda_k2, init,
                                   la.lambda);  // (1)
      Tensor att2 = kv.att2;                    // (N, h, 2d) or undefined
      backend_.diff_attention_forward(kv.geometry, la.q, kv.keys, kv.values, la.lambda, la.att,
                                      att2, la.lse);  // att (N, h, 2d), lse (B, 2h, T)
      // Per-head RMSNorm over 2d channels, times (1 - lambda_init): rows are (token, head).
      const std::int64_t rows = std::int64_t(batch) * seq * config_.n_heads;
      Tensor mixed = la.mixed.reshape({rows, 2 * d});  // (N * h, 2d)
      backend_.rmsnorm_forward(la.att.reshape({rows, 2 * d}), w.head_norm, config_.norm_eps,
                               1.0 - init, mixed, la.head_rstd);  // head_rstd (N * h)
      break;
    }
    case AttentionKind::diff_v2:
      backend_.linear_forward(la.xn1, w.wlambda, la.gate_logits);  // (N, h)
      backend_.diff_v2_attention_forward(kv.geometry, la.q, kv.keys, kv.values, la.gate_logits,
                                         la.att, la.lse,
                                         la.mixed);  // att (N, 2h, d), mixed (N, h, d)
      break;
    case AttentionKind::softmax:
      backend_.softmax_attention_forward(kv.geometry, la.q, kv.keys, kv.values, la.mixed,
                                         la.lse);  // mixed (N, h, d), lse (B, h, T)
      break;
  }
}

// In: a.dmixed (N, attn_out_dim) = dL/d(mixed). Out: a.dxn (N, E) = dL/d(xn1). Parameter
// gradients accumulate into the layer's gradient views.
void Model::attention_backward(int l, int batch, int seq) {
  Activations& a = *acts_;
  LayerActivations& la = a.layers[l];
  const LayerWeights& w = weights_.layers[l];
  LayerWeights& dw = gradients_.layers[l];
  const int d = config_.head_dim;
  const AttentionGeometry g = geometry(batch, seq, seq, 0);
  switch (config_.attention) {
    case AttentionKind::diff_v1: {
      const double init = lambda_init(l);
      const std::int64_t rows = std::int64_t(batch) * seq * config_.n_heads;
      Tensor* dgain = config_.head_norm_gain ? &dw.head_norm : nullptr;  // (2d) or none
      Tensor datt = a.datt.reshape({rows, 2 * d});                       // (N * h, 2d)
      backend_.rmsnorm_backward(la.att.reshape({rows, 2 * d}), w.head_norm, la.head_rstd,
                                1.0 - init, a.dmixed.reshape({rows, 2 * d}), datt, dgain);
      backend_.fill(a.dlambda, 0.0);  // (1)
      backend_.diff_attention_backward(g, la.q, la.k, la.v, la.lambda, la.att, la.att2, la.lse,
                                       a.datt, a.dq, a.dk, a.dv, a.dlambda);
      backend_.diff_lambda_backward(w.lambda_q1, w.lambda_k1, w.lambda_q2, w.lambda_k2, a.dlambda,
                                    dw.lambda_q1, dw.lambda_k1, dw.lambda_q2, dw.lambda_k2);
      break;
    }
    case AttentionKind::diff_v2:
      backend_.v2_combine_backward(la.att, la.gate_logits, a.dmixed, a.datt,
                                   a.dgate_logits);  // datt (N, 2h, d), dgate_logits (N, h)
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
                config_.rope_style, true);  // (N, q_dim)
  backend_.rope(a.dk, batch, seq, config_.k_heads(), d, config_.k_dim(), 0, config_.rope_theta,
                config_.rope_style, true);                            // (N, k_dim)
  backend_.linear_backward(la.xn1, w.wq, a.dq, a.dxn, dw.wq, false);  // dxn (N, E) =
  backend_.linear_backward(la.xn1, w.wk, a.dk, a.dxn, dw.wk, true);   // dxn +=
  backend_.linear_backward(la.xn1, w.wv, a.dv, a.dxn, dw.wv, true);   // dxn +=
  if (config_.attention == AttentionKind::diff_v2) {
    backend_.linear_backward(la.xn1, w.wlambda, a.dgate_logits, a.dxn, dw.wlambda, true);
  }
}

}  // namespace difftx
