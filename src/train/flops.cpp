// Training FLOPs per token (see flops.h for the formula).
#include "difftx/train/flops.h"

namespace difftx {

FlopCount training_flops_per_token(const ModelConfig& c, int seq_len) {
  const double E = c.d_model, L = c.n_layers, V = c.vocab_size, F = c.ffn_dim, d = c.head_dim;
  double layer = double(c.q_dim()) * E + double(c.k_dim()) * E + double(c.v_dim()) * E +
                 E * double(c.attn_out_dim()) + 3.0 * E * F;
  if (c.attention == AttentionKind::diff_v2) layer += double(c.n_heads) * E;
  FlopCount f;
  f.n_matmul = L * layer + V * E;
  const double t_eff = (double(seq_len) + 1.0) / 2.0;
  switch (c.attention) {
    case AttentionKind::softmax:
      f.attn_fwd = 4.0 * c.n_heads * d * t_eff;
      break;
    case AttentionKind::diff_v1:
      f.attn_fwd = 8.0 * c.n_heads * d * t_eff;
      break;
    case AttentionKind::diff_v2:
      f.attn_fwd = 4.0 * (2.0 * c.n_heads) * d * t_eff;
      break;
  }
  f.per_token = 6.0 * f.n_matmul + 3.0 * L * f.attn_fwd;
  return f;
}

}  // namespace difftx
