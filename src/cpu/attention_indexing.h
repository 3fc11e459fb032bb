// Index helpers shared by the CPU attention kernels: token-major (B, T, H, D) tensors whose
// rows (tokens) are `row_stride` elements apart; batch stride = sequence length * row_stride.
#pragma once

#include <algorithm>

#include "cpu_ops.h"

namespace difftx::cpu {

struct AttentionIndex {
  const AttentionGeometry& g;
  i64 qs() const { return g.q_row_stride ? g.q_row_stride : i64(g.q_heads) * g.head_dim; }
  i64 ks() const { return g.kv_row_stride_k ? g.kv_row_stride_k : i64(g.k_heads) * g.head_dim; }
  i64 vs() const { return g.kv_row_stride_v ? g.kv_row_stride_v : i64(g.v_heads) * g.v_head_dim; }
  i64 q(int b, int t, int head) const {
    return (i64(b) * g.q_len + t) * qs() + i64(head) * g.head_dim;
  }
  i64 k(int b, int s, int head) const {
    return (i64(b) * g.kv_len + s) * ks() + i64(head) * g.head_dim;
  }
  i64 v(int b, int s, int head) const {
    return (i64(b) * g.kv_len + s) * vs() + i64(head) * g.v_head_dim;
  }
  // Packed output (B, T, H, dv) and statistics (B, Hs, T).
  i64 out(int b, int t, int head, int heads) const {
    return ((i64(b) * g.q_len + t) * heads + head) * g.v_head_dim;
  }
  i64 stat(int b, int row, int t, int rows) const { return (i64(b) * rows + row) * g.q_len + t; }
  // Number of keys query t may see (causal with offset).
  int visible(int t) const { return std::min(g.kv_len, g.q_offset + t + 1); }
};

}  // namespace difftx::cpu
