// Parameters as named tensors: the single list of names, shapes, initialisation and
// weight-decay policy for a ModelConfig. Checkpoints (safetensors) use exactly these names.
//
// Names (l = layer index, weights in torch Linear layout (out, in)):
//   tok_embeddings.weight            (V, E)
//   layers.l.attn_norm.weight        (E)
//   layers.l.attn.wq.weight          (q_dim, E)   V1: component-major [Q1_0, Q2_0, Q1_1, ...]
//   layers.l.attn.wk.weight          (k_dim, E)   V1: [K1_0, K2_0, K1_1, K2_1, ...]
//   layers.l.attn.wv.weight          (v_dim, E)   V1: h_kv heads of 2d
//   layers.l.attn.wo.weight          (E, attn_out_dim)
//   layers.l.attn.lambda_q1|lambda_k1|lambda_q2|lambda_k2   (d)   diff_v1 only
//   layers.l.attn.head_norm.weight   (2d)         diff_v1 with head_norm_gain
//   layers.l.attn.wlambda.weight     (h, E)       diff_v2 only
//   layers.l.ffn_norm.weight         (E)
//   layers.l.ffn.w_gate.weight       (F, E)
//   layers.l.ffn.w_up.weight         (F, E)
//   layers.l.ffn.w_down.weight       (E, F)
//   norm.weight                      (E)
//   output.weight                    (V, E)       only when tied_embeddings is false
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "difftx/core/tensor.h"
#include "difftx/model/config.h"

namespace difftx {

enum class ParamInit {
  normal,           // Normal(0, init_std)
  normal_residual,  // Normal(0, init_std / sqrt(2 L)): W_o and w_down, as GPT-2 / llm.c
  normal_lambda,    // Normal(0, lambda_init_std): DIFF V1 lambda vectors
  ones,             // norm gains
  zeros,
};

struct ParamSpec {
  std::string name;
  Shape shape;
  ParamInit init;
  bool weight_decay;  // AdamW decoupled decay: matrices yes; norms, gains, lambdas no
  std::string group;  // for `model info`: embedding, attention, lambda, norm, ffn, output
};

// In checkpoint order, from the parameter table (src/model/weights.cpp; typed views: weights.h).
std::vector<ParamSpec> parameter_specs(const ModelConfig& config);
std::int64_t parameter_count(const ModelConfig& config);
// Closed-form count (ARCHITECTURE.md), checked against parameter_specs in the tests.
std::int64_t parameter_count_formula(const ModelConfig& config);

std::string layer_param(int layer, const char* suffix);  // "layers.<l>.<suffix>"

// An ordered set of named tensors (the specs' order).
class ParamSet {
 public:
  ParamSet() = default;
  // Tensors allocated on `device` with `dtype`, zero-filled.
  static ParamSet zeros_like_specs(const std::vector<ParamSpec>& specs, DType dtype, Device device);
  // Initialised on the CPU from `seed` as documented in ParamInit, then moved to `device`.
  static ParamSet initialised(const ModelConfig& config, std::uint64_t seed, DType dtype,
                              Device device);
  // The same distributions from a counter-based generator (element i of the t-th tensor from a
  // hash of (seed, t, i), Box-Muller), filled by `threads` threads (0: one per hardware thread)
  // with the same values for any count: for random weights of large configs (`difftx bench
  // --config`). Other values than initialised().
  static ParamSet initialised_parallel(const ModelConfig& config, std::uint64_t seed, DType dtype,
                                       Device device, int threads = 0);

  void add(const std::string& name, Tensor tensor);
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  Tensor& at(const std::string& name);
  const Tensor& at(const std::string& name) const;
  std::size_t size() const { return tensors_.size(); }
  const std::string& name(std::size_t i) const { return names_[i]; }
  Tensor& tensor(std::size_t i) { return tensors_[i]; }
  const Tensor& tensor(std::size_t i) const { return tensors_[i]; }
  std::int64_t numel() const;

 private:
  std::vector<std::string> names_;
  std::vector<Tensor> tensors_;
  std::map<std::string, std::size_t> index_;
};

}  // namespace difftx
