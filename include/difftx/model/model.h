// Model: the one definition of DIFF V1, DIFF V2 and the softmax baseline, written once against
// the Backend op set. Holds master parameters and gradients (param dtype), compute copies of the
// matrices (activation dtype, refreshed after each optimizer step) and reusable activations; all
// three weight sets are bound once, at construction, as typed views (weights.h).
// Files: model.cpp (construction, weights, buffers), model_forward.cpp (the layer loop),
// model_attention.cpp (the attention block, the one place the kinds differ), model_backward.cpp,
// model_decode.cpp (KV cache).
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include "difftx/model/backend.h"
#include "difftx/model/config.h"
#include "difftx/model/params.h"
#include "difftx/model/weights.h"

namespace difftx {

class KvCache;
class ModelProbe;
struct ProbeOptions;

class Model {
 public:
  // `params` must hold every tensor of parameter_specs(config) with the backend's param dtype on
  // its device (shapes are checked).
  Model(ModelConfig config, Backend& backend, ParamSet params);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  Backend& backend() { return backend_; }
  // Named views of the master parameters and gradients (checkpoints, optimizer, tests). Write
  // their tensors in place: the model's typed views share their storage.
  ParamSet& params() { return params_; }
  const ParamSet& params() const { return params_; }
  ParamSet& grads() { return grads_; }

  void zero_grads();
  // Re-derives the activation-dtype copies of the weights from the master parameters; call after
  // changing parameters (optimizer step, loading). Copies nothing when both dtypes are equal;
  // fails if a tensor of params() or grads() was replaced rather than written in place.
  void refresh_compute_weights();

  // inputs, targets: host (B, T) i32 (targets < 0 are ignored). Mean loss over counted targets.
  // forward_backward also accumulates grad_scale * d(mean loss)/d(param) into grads().
  double forward_backward(const Tensor& inputs, const Tensor& targets, double grad_scale = 1.0);
  double forward_loss(const Tensor& inputs, const Tensor& targets);
  // Host (B, T, V) logits in f32 (or f64 on the f64 CPU backend).
  Tensor logits(const Tensor& inputs);

  // Per-layer lambda of DIFF V1 (empty otherwise), computed on the host from the parameters.
  std::vector<double> lambdas() const;

  // Incremental decoding (batch 1): feeds tokens at positions cache.length()..; returns host
  // (n, V) logits of the fed tokens and advances the cache.
  Tensor decode(KvCache& cache, const std::vector<std::int32_t>& tokens);

  struct Activations;  // defined in model_activations.h

 private:
  friend class ModelProbe;  // the evaluation probes (probe.h, model_probe.cpp)

  struct AttentionKeys;  // defined in model_activations.h

  void check_tokens(const Tensor& tokens, const char* what) const;
  Activations& activations(int batch, int seq);
  AttentionGeometry geometry(int batch, int seq, int kv_len, int q_offset) const;
  void forward(const Tensor& inputs_host, int batch, int seq);  // full sequences from position 0
  // Embedding -> layers -> final norm -> logits over the ids already in the activations, tokens
  // at positions pos_offset..; with a cache (decoding, batch 1) attention also reads the prefix.
  void forward_layers(int batch, int seq, int pos_offset, KvCache* cache);
  void layer_forward(int layer, int batch, int seq, int pos_offset, KvCache* cache);
  void layer_backward(int layer, int batch, int seq);
  void attention_forward(int layer, int batch, int seq, int pos_offset, KvCache* cache);
  void attention_backward(int layer, int batch, int seq);
  // Decoding: appends this call's keys/values to the cache and returns the whole prefix.
  AttentionKeys cached_keys(KvCache& cache, int layer, int seq, int pos_offset);
  // The probe path's attention (model_probe.cpp), used instead of the fused ops while probe_ is
  // set: scores, optional logit quantization, softmax, probs x V, observers.
  void probe_attention(int layer, int batch, int seq, const AttentionKeys& kv);

  ModelConfig config_;
  Backend& backend_;
  ParamSet params_;
  ParamSet grads_;
  ModelWeights masters_;    // views of params_
  ModelWeights gradients_;  // views of grads_
  ModelWeights weights_;    // what the passes read: activation-dtype matrices, master vectors
  // (master, activation-dtype copy) of each matrix when the dtypes differ.
  std::vector<std::pair<Tensor, Tensor>> converted_;
  // Storage of each params_ / grads_ tensor when bound (refresh_compute_weights checks it).
  std::vector<std::pair<const void*, const void*>> bound_;
  std::unique_ptr<Activations> acts_;
  const ProbeOptions* probe_ = nullptr;  // set by ModelProbe for the length of one call
};

// Key/value cache for incremental decoding with batch 1: per layer K (S_max, k_dim) and
// V (S_max, v_dim) in the activation dtype on the backend's device.
class KvCache {
 public:
  KvCache(const Model& model, int capacity);
  int length() const { return length_; }
  int capacity() const { return capacity_; }
  void reset() { length_ = 0; }

 private:
  friend class Model;
  friend class ModelProbe;
  int capacity_;
  int length_ = 0;
  std::vector<Tensor> k_;  // per layer (S_max, k_dim)
  std::vector<Tensor> v_;  // per layer (S_max, v_dim)
};

}  // namespace difftx
