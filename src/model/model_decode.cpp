// Incremental decoding with a key/value cache (batch 1): each call feeds new tokens, appends
// their keys/values to the cache and returns their logits; attention sees the whole prefix.
#include "difftx/model/model.h"
#include "model_activations.h"

namespace difftx {

KvCache::KvCache(const Model& model, int capacity) : capacity_(capacity) {
  const ModelConfig& c = model.config();
  DIFFTX_CHECK(capacity > 0 && capacity <= c.max_seq_len,
               "KV cache capacity {} must be in [1, max_seq_len = {}]", capacity, c.max_seq_len);
  Model& m = const_cast<Model&>(model);
  for (int l = 0; l < c.n_layers; ++l) {
    k_.push_back(
        Tensor::zeros({capacity, c.k_dim()}, m.backend().act_dtype(), m.backend().device()));
    v_.push_back(
        Tensor::zeros({capacity, c.v_dim()}, m.backend().act_dtype(), m.backend().device()));
  }
}

Model::AttentionKeys Model::cached_keys(KvCache& cache, int l, int seq, int pos_offset) {
  const LayerActivations& la = acts_->layers[l];
  const int total = pos_offset + seq;
  cache.k_[l].rows(pos_offset, total).copy_from(la.k);  // (seq, k_dim), after RoPE
  cache.v_[l].rows(pos_offset, total).copy_from(la.v);  // (seq, v_dim)
  // Keys (S, k_dim) and values (S, v_dim) of the whole prefix; A2 V is kept only for training.
  return {cache.k_[l].rows(0, total), cache.v_[l].rows(0, total), Tensor(),
          geometry(1, seq, total, pos_offset)};
}

Tensor Model::decode(KvCache& cache, const std::vector<std::int32_t>& tokens) {
  const int n = static_cast<int>(tokens.size());
  DIFFTX_CHECK(n > 0, "decode needs at least one token");
  DIFFTX_CHECK(cache.length_ + n <= cache.capacity_,
               "the KV cache holds {} of {} positions; {} more do not fit (raise the capacity or "
               "shorten the prompt)",
               cache.length_, cache.capacity_, n);
  const int past = cache.length_, total = past + n;
  Tensor host_ids = Tensor::empty({1, n}, DType::i32);
  for (int i = 0; i < n; ++i) {
    DIFFTX_CHECK(tokens[i] >= 0 && tokens[i] < config_.vocab_size,
                 "token id {} is outside the vocabulary [0, {})", tokens[i], config_.vocab_size);
    host_ids.data<std::int32_t>()[i] = tokens[i];
  }
  // Decoding reuses the activation buffers sized for (1, n).
  Activations& a = activations(1, n);
  a.ids.copy_from(host_ids.reshape({n}));
  forward_layers(1, n, past, &cache);
  cache.length_ = total;
  DType out = backend_.param_dtype() == DType::f64 ? DType::f64 : DType::f32;
  return a.logits.to(Device::cpu).to_dtype(out).reshape({n, config_.vocab_size});
}

}  // namespace difftx
