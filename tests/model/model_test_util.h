// Helpers for model tests: tiny configs of each attention kind and random token batches.
#pragma once

#include <random>

#include "difftx/core/tensor.h"
#include "difftx/model/config.h"

namespace difftx::testing {

// A tiny config: E = 16 for V1 (h heads of d = 4, value 2d), softmax/V2 heads of d = 4.
inline ModelConfig tiny_config(AttentionKind kind, bool gqa,
                               RopeStyle style = RopeStyle::interleaved, bool tied = true) {
  ModelConfig c;
  c.vocab_size = 23;
  c.attention = kind;
  c.n_layers = 2;
  c.head_dim = 4;
  c.n_heads = kind == AttentionKind::diff_v1 ? 2 : 4;
  c.d_model = kind == AttentionKind::diff_v1 ? 2 * c.n_heads * c.head_dim : c.n_heads * c.head_dim;
  c.n_kv_heads = gqa ? c.n_heads / 2 : c.n_heads;
  c.ffn_dim = 24;
  c.rope_style = style;
  c.tied_embeddings = tied;
  c.max_seq_len = 16;
  c.init_std = 0.2;  // larger than training default so every path carries signal
  c.lambda_init_std = 0.3;
  c.validate("tiny test config");
  return c;
}

inline Tensor random_tokens(int batch, int seq, int vocab, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> dist(0, vocab - 1);
  Tensor t = Tensor::empty({batch, seq}, DType::i32);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<std::int32_t>()[i] = dist(rng);
  return t;
}

}  // namespace difftx::testing
