// Training-memory estimate of a ModelConfig and the refusal of what cannot fit.
#include "difftx/model/memory_estimate.h"

#include "difftx/core/error.h"

namespace difftx {

std::string format_gib(double bytes) {
  const double gib = bytes / double(1ull << 30);
  return gib >= 100 ? fmt::format("{:.0f} GiB", gib) : fmt::format("{:.2f} GiB", gib);
}

std::string MemoryEstimate::breakdown() const {
  return fmt::format("weights {}, gradients {}, AdamW moments {}, activations {}",
                     format_gib(weights), format_gib(gradients), format_gib(optimizer),
                     format_gib(activations));
}

double parameter_count_real(const ModelConfig& c) {
  const double E = c.d_model, V = c.vocab_size, F = c.ffn_dim, d = c.head_dim, h = c.n_heads;
  const double q = double(c.q_heads()) * d, k = double(c.k_heads()) * d;
  const double v = double(c.n_kv_heads) * c.v_head_dim(), o = double(c.n_heads) * c.v_head_dim();
  double extra = 0;
  if (c.attention == AttentionKind::diff_v1) extra = 4 * d + (c.head_norm_gain ? 2 * d : 0);
  if (c.attention == AttentionKind::diff_v2) extra = h * E;
  const double layer = E * (q + k + v) + o * E + extra + 2 * E + 3 * E * F;
  return V * E * (c.tied_embeddings ? 1 : 2) + E + double(c.n_layers) * layer;
}

MemoryEstimate estimate_training_memory(const ModelConfig& c, int batch, int seq_len,
                                        const MemoryLayout& layout) {
  const double E = c.d_model, V = c.vocab_size, F = c.ffn_dim, L = c.n_layers, h = c.n_heads;
  const double q = double(c.q_heads()) * c.head_dim, k = double(c.k_heads()) * c.head_dim;
  const double v = double(c.n_kv_heads) * c.v_head_dim(), o = double(c.n_heads) * c.v_head_dim();
  const double params = parameter_count_real(c);
  // Activations per token (model_activations.h): per layer the residual input, two norms
  // (E + 1 each), q, k, v, the attention output and (V1) A2 V, the log-sum-exp per query head,
  // the W_o input, the residual after attention, three SwiGLU tensors, the V1/V2 head terms;
  // then the final norm, logits and losses, and the backward buffers reused by every layer.
  const double per_layer = 4 * E + 2 + q + k + v +
                           o * (c.attention == AttentionKind::diff_v1 ? 3 : 2) + c.q_heads() +
                           3 * F + h;
  const double global = 2 * E + 1 + V + 1 + E + 4 * E + 2 * o + q + k + v + 3 * F + h;
  const double tokens = double(batch) * seq_len;
  const double p = double(dtype_size(layout.param_dtype)), a = double(dtype_size(layout.act_dtype));
  MemoryEstimate m;
  m.weights = params * p + (layout.compute_weight_copies ? params * a : 0);
  m.gradients = params * p;
  m.optimizer = 2 * params * p;
  m.activations = tokens * (L * per_layer + global) * a;
  return m;
}

void require_memory(const MemoryEstimate& need, std::uint64_t capacity_bytes,
                    std::string_view purpose, std::string_view place, std::string_view advice) {
  if (capacity_bytes == 0 || need.total() <= double(capacity_bytes)) return;
  fail("this model needs {} {} ({}), but {} has {}: {}", format_gib(need.total()), purpose,
       need.breakdown(), place, format_gib(double(capacity_bytes)), advice);
}

}  // namespace difftx
