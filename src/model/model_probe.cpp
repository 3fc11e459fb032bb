// The evaluation probes' side of the model (probe.h): the materialized attention path (scores,
// optional absmax logit quantization, softmax, probs x V with each kind's combination) that
// attention_forward runs instead of the fused ops while a probe is set, and ModelProbe's entry
// points (device logits, probe forwards, last-position decoding).
#include <cmath>

#include "difftx/model/model.h"
#include "difftx/model/probe.h"
#include "model_activations.h"

namespace difftx {
namespace {

ProbeCombine combine_of(AttentionKind kind) {
  switch (kind) {
    case AttentionKind::diff_v1:
      return ProbeCombine::diff_v1;
    case AttentionKind::diff_v2:
      return ProbeCombine::diff_v2;
    case AttentionKind::softmax:
      return ProbeCombine::softmax;
  }
  return ProbeCombine::softmax;
}

}  // namespace

// Replaces the fused ops of attention_forward (model_attention.cpp) while a probe is set: q, k
// and v (after RoPE; with a cache, the whole prefix) are in la and kv; writes la.mixed.
void Model::probe_attention(int l, int batch, int seq, const AttentionKeys& kv) {
  LayerActivations& la = acts_->layers[l];
  const LayerWeights& w = weights_.layers[l];
  const AttentionGeometry& g = kv.geometry;
  const ProbeCombine combine = combine_of(config_.attention);
  const Shape score_shape = {g.batch, g.q_heads, g.q_len, g.kv_len};  // (B, Hs, T, S)
  Tensor scores = Tensor::empty(score_shape, backend_.param_dtype(), backend_.device());
  backend_.attention_scores(g, combine, la.q, kv.keys, scores);
  ProbeObserver* observer = probe_->observer;
  const bool observed = observer && observer->wants_attention(l);
  // Observers see the logits before quantization, so quantize (and softmax) into copies then.
  Tensor logits = scores;
  if (probe_->quant.enabled()) {
    if (observed) logits = scores.clone();
    backend_.attention_logits_quantize(g, probe_->quant.bits, probe_->quant.per_head, logits);
  }
  Tensor probs =
      observed ? Tensor::empty(score_shape, backend_.param_dtype(), backend_.device()) : logits;
  backend_.attention_softmax(g, logits, probs);  // (B, Hs, T, S)
  const int d = config_.head_dim;
  switch (config_.attention) {
    case AttentionKind::diff_v1: {
      const double init = lambda_init(l);
      backend_.diff_lambda_forward(w.lambda_q1, w.lambda_k1, w.lambda_q2, w.lambda_k2, init,
                                   la.lambda);  // (1)
      backend_.attention_probs_value(g, combine, probs, kv.values, la.lambda, Tensor(),
                                     la.att);  // (N, h, 2d)
      // Per-head RMSNorm over 2d channels, times (1 - lambda_init), as in the fused path.
      const std::int64_t rows = std::int64_t(batch) * seq * config_.n_heads;
      Tensor mixed = la.mixed.reshape({rows, 2 * d});  // (N * h, 2d)
      backend_.rmsnorm_forward(la.att.reshape({rows, 2 * d}), w.head_norm, config_.norm_eps,
                               1.0 - init, mixed, la.head_rstd);
      break;
    }
    case AttentionKind::diff_v2:
      backend_.linear_forward(la.xn1, w.wlambda, la.gate_logits);  // (N, h)
      backend_.attention_probs_value(g, combine, probs, kv.values, Tensor(), la.gate_logits,
                                     la.mixed);  // (N, h, d)
      break;
    case AttentionKind::softmax:
      backend_.attention_probs_value(g, combine, probs, kv.values, Tensor(), Tensor(),
                                     la.mixed);  // (N, h, d)
      break;
  }
  if (observed) {
    ProbeAttention a;
    a.layer = l;
    a.geometry = g;
    a.combine = combine;
    a.scores = &scores;
    a.probs = &probs;
    if (config_.attention == AttentionKind::diff_v1) a.lambda = &la.lambda;
    if (config_.attention == AttentionKind::diff_v2) a.gate_logits = &la.gate_logits;
    observer->on_attention(a);
  }
}

void ModelProbe::check_inputs(const Tensor& t) const {
  const ModelConfig& c = model_.config();
  DIFFTX_CHECK(t.defined() && t.ndim() == 2 && t.dtype() == DType::i32 &&
                   t.device() == Device::cpu && t.dim(0) > 0 && t.dim(1) > 0,
               "probe inputs must be host (B, T) i32 tokens, got {}",
               t.defined() ? t.describe() : "nothing");
  DIFFTX_CHECK(t.dim(1) <= c.max_seq_len,
               "probe inputs have {} tokens per row, the model's max_seq_len is {}", t.dim(1),
               c.max_seq_len);
  const std::int32_t* p = t.data<std::int32_t>();
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    DIFFTX_CHECK(p[i] >= 0 && p[i] < c.vocab_size, "token id {} is outside the vocabulary [0, {})",
                 p[i], c.vocab_size);
  }
}

const Tensor& ModelProbe::forward_logits(const Tensor& inputs) {
  check_inputs(inputs);
  model_.forward(inputs, int(inputs.dim(0)), int(inputs.dim(1)));
  return model_.acts_->logits;  // (B*T, V)
}

const Tensor& ModelProbe::probe_logits(const Tensor& inputs, const ProbeOptions& options) {
  check_inputs(inputs);
  model_.probe_ = &options;
  try {
    model_.forward(inputs, int(inputs.dim(0)), int(inputs.dim(1)));
  } catch (...) {
    model_.probe_ = nullptr;
    throw;
  }
  model_.probe_ = nullptr;
  return model_.acts_->logits;  // (B*T, V)
}

Tensor ModelProbe::decode(KvCache& cache, const std::vector<std::int32_t>& tokens,
                          const ProbeOptions* probe) {
  const int n = static_cast<int>(tokens.size());
  DIFFTX_CHECK(n > 0, "decode needs at least one token");
  DIFFTX_CHECK(cache.length_ + n <= cache.capacity_,
               "the KV cache holds {} of {} positions; {} more do not fit", cache.length_,
               cache.capacity_, n);
  Tensor host_ids = Tensor::empty({1, n}, DType::i32);
  std::copy(tokens.begin(), tokens.end(), host_ids.data<std::int32_t>());
  check_inputs(host_ids);
  const int past = cache.length_;
  Model::Activations& a = model_.activations(1, n);
  a.ids.copy_from(host_ids.reshape({n}));
  model_.probe_ = probe;
  try {
    model_.forward_layers(1, n, past, &cache);
  } catch (...) {
    model_.probe_ = nullptr;
    throw;
  }
  model_.probe_ = nullptr;
  cache.length_ = past + n;
  Tensor last = a.logits.rows(n - 1, n).to(Device::cpu);  // (1, V)
  return (last.dtype() == DType::f32 ? last : last.to_dtype(DType::f32))
      .reshape({model_.config().vocab_size});
}

Tensor ModelProbe::decode_last(KvCache& cache, const std::vector<std::int32_t>& tokens) {
  return decode(cache, tokens, nullptr);
}

Tensor ModelProbe::probe_decode_last(KvCache& cache, const std::vector<std::int32_t>& tokens,
                                     const ProbeOptions& options) {
  return decode(cache, tokens, &options);
}

}  // namespace difftx
