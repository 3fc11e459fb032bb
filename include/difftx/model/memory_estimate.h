// Memory a model needs, estimated from its config before anything is allocated, so that a
// config that cannot fit is refused with the figure ("this model needs N GiB ...") instead of
// running out of memory or paging for minutes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "difftx/core/tensor.h"
#include "difftx/model/config.h"

namespace difftx {

// Bytes, as doubles: absurd configs must not overflow the estimate itself.
struct MemoryEstimate {
  double weights = 0;  // master weights, plus low-precision compute copies where kept
  double gradients = 0;
  double optimizer = 0;    // AdamW first and second moments
  double activations = 0;  // saved forward activations and backward buffers of one micro-batch
  double total() const { return weights + gradients + optimizer + activations; }
  // "weights 1.2 GiB, gradients 1.2 GiB, AdamW moments 2.4 GiB, activations 0.3 GiB"
  std::string breakdown() const;
};

// How a backend stores a model: the dtype of weights, gradients and moments; the dtype of
// activations; whether it keeps compute copies of the weights in the activation dtype.
struct MemoryLayout {
  DType param_dtype = DType::f32;
  DType act_dtype = DType::f32;
  bool compute_weight_copies = false;
};

// The closed-form parameter count (ARCHITECTURE.md) in floating point: no overflow for absurd
// sizes, so ModelConfig::validate can refuse them with the figure. Needs only positive sizes
// whose head count x head dim equals d_model.
double parameter_count_real(const ModelConfig& config);

// Training with micro-batches of `batch` x `seq_len` tokens (the model's tensors as in
// params.h, the saved activations as in model_activations.h; gradient accumulation needs no
// more memory). A lower bound: allocator slack and library workspaces come on top.
MemoryEstimate estimate_training_memory(const ModelConfig& config, int batch, int seq_len,
                                        const MemoryLayout& layout);

// "12.3 GiB" (binary units).
std::string format_gib(double bytes);

// Throws difftx::Error when `need` exceeds `capacity_bytes` (0 means unknown: no check):
// "this model needs N GiB <purpose> (<breakdown>), but <place> has M GiB: <advice>".
void require_memory(const MemoryEstimate& need, std::uint64_t capacity_bytes,
                    std::string_view purpose, std::string_view place, std::string_view advice);

}  // namespace difftx
