// ModelProbe: what the evaluation tasks need from a Model beyond training and generation.
//   - device logits of the fused forward (per-token losses without copying logits to the host);
//   - the probe path: the same forward with attention materialized as explicit tensors
//     (attention_probe.h: scores -> optional absmax quantization -> softmax -> probs x V with
//     the DIFF V1 / V2 combination), observed layer by layer (attention logits, probabilities,
//     hidden states); without quantization it computes the fused path's function;
//   - decoding with a KV cache that returns only the last position's logits, on either path.
// Only src/eval uses it; training and serving never run the probe path.
#pragma once

#include <cstdint>
#include <vector>

#include "difftx/model/attention_probe.h"
#include "difftx/model/model.h"

namespace difftx {

// Dynamic absmax quantization of the attention logits (Backend::attention_logits_quantize).
struct ProbeQuantization {
  int bits = 16;          // 16 = none (the unquantized model); else 2..15
  bool per_head = false;  // one scale per score map instead of one per batch row and layer
  bool enabled() const { return bits < 16; }
};

// One layer's attention as the probe path computed it (valid during the callback only).
struct ProbeAttention {
  int layer = 0;
  AttentionGeometry geometry;  // of this call (B, T, S = kv_len, q_offset, heads)
  ProbeCombine combine = ProbeCombine::softmax;
  const Tensor* scores = nullptr;       // (B, Hs, T, S) stat: q.k * scale, before quantization
  const Tensor* probs = nullptr;        // (B, Hs, T, S) stat: softmax of the (quantized) scores
  const Tensor* lambda = nullptr;       // DIFF V1: (1) stat on the device; else null
  const Tensor* gate_logits = nullptr;  // DIFF V2: (B*T, h) act; sigmoid gives the per-token lambda
};

class ProbeObserver {
 public:
  virtual ~ProbeObserver() = default;
  // Whether on_attention wants layer l (the probe then keeps the scores before quantizing).
  virtual bool wants_attention(int layer) const { return true; }
  virtual void on_attention(const ProbeAttention& attention) {}
  // The layer's output: the residual stream after its FFN add, (B*T, E) act on the device.
  virtual void on_hidden(int layer, const Tensor& hidden) {}
};

struct ProbeOptions {
  ProbeQuantization quant;
  ProbeObserver* observer = nullptr;
};

class ModelProbe {
 public:
  explicit ModelProbe(Model& model) : model_(model) {}

  Model& model() { return model_; }

  // Fused forward of host (B, T) i32 inputs; device logits (B*T, V) act, valid until the
  // model's next call.
  const Tensor& forward_logits(const Tensor& inputs);
  // Probe-path forward of host (B, T) i32 inputs; device logits (B*T, V) act, valid until the
  // model's next call.
  const Tensor& probe_logits(const Tensor& inputs, const ProbeOptions& options);

  // Feeds tokens at positions cache.length().. (batch 1) and returns the host (V) f32 logits of
  // the last one only; the fused path, or the probe path with `options` (quantization and
  // observers apply to these tokens' queries against the whole cached prefix).
  Tensor decode_last(KvCache& cache, const std::vector<std::int32_t>& tokens);
  Tensor probe_decode_last(KvCache& cache, const std::vector<std::int32_t>& tokens,
                           const ProbeOptions& options);

 private:
  void check_inputs(const Tensor& inputs) const;
  Tensor decode(KvCache& cache, const std::vector<std::int32_t>& tokens, const ProbeOptions* probe);

  Model& model_;
};

}  // namespace difftx
