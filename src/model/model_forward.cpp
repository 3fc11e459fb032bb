// Model forward pass: the layer loop (embedding, pre-norm attention and SwiGLU blocks, final
// norm, logits) shared by training, evaluation and cached decoding, and the loss/logits entry
// points. Weights come from the typed views bound at construction.
#include "difftx/model/model.h"
#include "difftx/model/probe.h"
#include "model_activations.h"

namespace difftx {

void Model::check_tokens(const Tensor& t, const char* what) const {
  DIFFTX_CHECK(t.defined() && t.ndim() == 2 && t.dtype() == DType::i32 && t.device() == Device::cpu,
               "{} must be host (B, T) i32 tokens, got {}", what,
               t.defined() ? t.describe() : "nothing");
  DIFFTX_CHECK(t.dim(1) <= config_.max_seq_len,
               "{} has {} tokens per row, the model's max_seq_len is {}", what, t.dim(1),
               config_.max_seq_len);
}

void Model::forward(const Tensor& inputs_host, int batch, int seq) {
  Activations& a = activations(batch, seq);
  a.ids.copy_from(inputs_host.reshape({std::int64_t(batch) * seq}));  // (N) i32
  forward_layers(batch, seq, 0, nullptr);
}

void Model::forward_layers(int batch, int seq, int pos_offset, KvCache* cache) {
  Activations& a = *acts_;
  backend_.embedding_forward(a.ids, weights_.tok_embeddings, a.resid[0]);  // (N, E)
  for (int l = 0; l < config_.n_layers; ++l) layer_forward(l, batch, seq, pos_offset, cache);
  backend_.rmsnorm_forward(a.resid[config_.n_layers], weights_.norm, config_.norm_eps, 1.0, a.xf,
                           a.rstdf);                         // xf (N, E), rstdf (N)
  backend_.linear_forward(a.xf, weights_.output, a.logits);  // (N, V)
}

// resid[l] (N, E) -> resid[l+1] (N, E): y = x + W_o(attn(norm(x))), x' = y + FFN(norm(y)).
void Model::layer_forward(int l, int batch, int seq, int pos_offset, KvCache* cache) {
  Activations& a = *acts_;
  LayerActivations& la = a.layers[l];
  const LayerWeights& w = weights_.layers[l];
  backend_.rmsnorm_forward(a.resid[l], w.attn_norm, config_.norm_eps, 1.0, la.xn1,
                           la.rstd1);                   // xn1 (N, E), rstd1 (N)
  attention_forward(l, batch, seq, pos_offset, cache);  // xn1 -> mixed (N, attn_out_dim)
  backend_.linear_forward(la.mixed, w.wo, a.tmp_e);     // (N, E)
  backend_.add(a.resid[l], a.tmp_e, la.y);              // (N, E)
  backend_.rmsnorm_forward(la.y, w.ffn_norm, config_.norm_eps, 1.0, la.xn2,
                           la.rstd2);                  // xn2 (N, E), rstd2 (N)
  backend_.linear_forward(la.xn2, w.w_gate, la.gate);  // (N, F)
  backend_.linear_forward(la.xn2, w.w_up, la.up);      // (N, F)
  backend_.swiglu_forward(la.gate, la.up, la.hsw);     // (N, F)
  backend_.linear_forward(la.hsw, w.w_down, a.tmp_e);  // (N, E)
  backend_.add(la.y, a.tmp_e, a.resid[l + 1]);         // (N, E)
  if (probe_ && probe_->observer) probe_->observer->on_hidden(l, a.resid[l + 1]);  // evaluation
}

double Model::forward_loss(const Tensor& inputs, const Tensor& targets) {
  check_tokens(inputs, "inputs");
  check_tokens(targets, "targets");
  const int batch = int(inputs.dim(0)), seq = int(inputs.dim(1));
  forward(inputs, batch, seq);
  Activations& a = *acts_;
  a.targets.copy_from(targets.reshape({targets.numel()}));        // (N) i32
  backend_.cross_entropy_forward(a.logits, a.targets, a.losses);  // losses (N)
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
  check_tokens(inputs, "inputs");
  const int batch = int(inputs.dim(0)), seq = int(inputs.dim(1));
  forward(inputs, batch, seq);
  Tensor host = acts_->logits.to(Device::cpu);  // (N, V)
  DType out = backend_.param_dtype() == DType::f64 ? DType::f64 : DType::f32;
  return host.to_dtype(out).reshape({batch, seq, config_.vocab_size});  // (B, T, V)
}

}  // namespace difftx
