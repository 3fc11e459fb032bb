// Model backward pass: fused cross-entropy, then the layers in reverse (SwiGLU block, attention
// block, the two pre-norms and residuals) into the embedding. Activation gradients are
// overwritten in the shared buffers; parameter gradients accumulate into the gradient views.
#include "difftx/model/model.h"
#include "model_activations.h"

namespace difftx {

double Model::forward_backward(const Tensor& inputs, const Tensor& targets, double grad_scale) {
  check_tokens(inputs, "inputs");
  check_tokens(targets, "targets");
  DIFFTX_CHECK(inputs.shape() == targets.shape(), "inputs {} and targets {} differ in shape",
               shape_string(inputs.shape()), shape_string(targets.shape()));
  const int batch = int(inputs.dim(0)), seq = int(inputs.dim(1));
  forward(inputs, batch, seq);
  Activations& a = *acts_;
  const std::int32_t* tg = targets.data<std::int32_t>();
  std::int64_t counted = 0;
  for (std::int64_t i = 0; i < targets.numel(); ++i) counted += tg[i] >= 0;
  DIFFTX_CHECK(counted > 0, "every target is ignored (negative): nothing to learn from");
  a.targets.copy_from(targets.reshape({targets.numel()}));  // (N) i32
  // losses (N); logits (N, V) become dlogits in place.
  backend_.cross_entropy_forward_backward(a.logits, a.targets, float(grad_scale / double(counted)),
                                          a.losses, a.logits);
  double loss = 0;
  for (double x : a.losses.to_double_vector()) loss += x;
  loss /= double(counted);

  const std::int64_t N = std::int64_t(batch) * seq;
  const std::int64_t E = config_.d_model;
  backend_.linear_backward(a.xf, weights_.output, a.logits, a.dtmp, gradients_.output,
                           false);  // dtmp (N, E) = dL/d(xf)
  backend_.rmsnorm_backward(a.resid[config_.n_layers], weights_.norm, a.rstdf, 1.0, a.dtmp,
                            a.dresid, &gradients_.norm);  // dresid (N, E) = dL/d(resid[L])
  gradients_ready(0);                                     // head
  for (int l = config_.n_layers - 1; l >= 0; --l) {
    layer_backward(l, batch, seq);
    gradients_ready(std::size_t(config_.n_layers - l));  // layer l
  }
  backend_.embedding_backward(a.ids, a.dresid.reshape({N, E}), gradients_.tok_embeddings);
  gradients_ready(std::size_t(config_.n_layers) + 1);  // embedding (and a tied output)
  return loss;
}

void Model::gradients_ready(std::size_t group) {
  if (grads_ready_ && !ready_groups_[group].empty()) grads_ready_(ready_groups_[group]);
}

// In: a.dresid (N, E) = dL/d(resid[l+1]). Out: a.dresid = dL/d(resid[l]).
void Model::layer_backward(int l, int batch, int seq) {
  Activations& a = *acts_;
  LayerActivations& la = a.layers[l];
  const LayerWeights& w = weights_.layers[l];
  LayerWeights& dw = gradients_.layers[l];
  // FFN block: resid[l+1] = y + W_down(silu(W_gate xn2) * W_up xn2), xn2 = norm(y).
  backend_.linear_backward(la.hsw, w.w_down, a.dresid, a.dhsw, dw.w_down, false);  // dhsw (N, F)
  backend_.swiglu_backward(la.gate, la.up, a.dhsw, a.dgate, a.dup);  // dgate, dup (N, F)
  backend_.linear_backward(la.xn2, w.w_gate, a.dgate, a.dxn, dw.w_gate, false);  // dxn (N, E) =
  backend_.linear_backward(la.xn2, w.w_up, a.dup, a.dxn, dw.w_up, true);         // dxn +=
  backend_.rmsnorm_backward(la.y, w.ffn_norm, la.rstd2, 1.0, a.dxn, a.dy,
                            &dw.ffn_norm);  // dy (N, E)
  backend_.add_inplace(a.dy, a.dresid);     // dy: gradient w.r.t. y
  // Attention block: y = resid[l] + W_o(mixed).
  backend_.linear_backward(la.mixed, w.wo, a.dy, a.dmixed, dw.wo,
                           false);    // dmixed (N, attn_out_dim)
  attention_backward(l, batch, seq);  // dmixed -> dxn (N, E)
  backend_.rmsnorm_backward(a.resid[l], w.attn_norm, la.rstd1, 1.0, a.dxn, a.dtmp,
                            &dw.attn_norm);  // dtmp (N, E)
  backend_.add(a.dtmp, a.dy, a.dresid);      // gradient w.r.t. resid[l]
}

}  // namespace difftx
