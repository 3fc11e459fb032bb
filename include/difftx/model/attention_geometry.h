// AttentionGeometry: the shape of one attention call, shared by the Backend interface and the
// CUDA attention kernels. Plain struct, standard headers only (nvcc compiles this header).
#pragma once

#include <cmath>
#include <cstdint>

namespace difftx {

// Geometry of one attention call. Queries are tokens [q_offset, q_offset + T) of a sequence
// whose keys/values 0..kv_len-1 are given (kv_len >= q_offset + T); query t sees keys
// 0..q_offset+t (causal). Training uses q_offset = 0, kv_len = T.
struct AttentionGeometry {
  int batch = 0;   // B
  int q_len = 0;   // T
  int kv_len = 0;  // S
  int q_offset = 0;
  int q_heads = 0;                // d-sized query components (V1: 2h, interleaved Q1/Q2 per head)
  int k_heads = 0;                // d-sized key components (V1: 2h_kv)
  int v_heads = 0;                // value heads (h_kv)
  int head_dim = 0;               // d
  int v_head_dim = 0;             // d, or 2d for V1
  double scale = 0.0;             // softmax scale, 1/sqrt(d)
  std::int64_t q_row_stride = 0;  // elements between tokens in q (>= q_heads*head_dim)
  std::int64_t kv_row_stride_k = 0;
  std::int64_t kv_row_stride_v = 0;
};

// Geometry of contiguous (packed) q/k/v: row strides are heads x dims, scale 1/sqrt(d).
inline AttentionGeometry packed_attention_geometry(int batch, int q_len, int kv_len, int q_offset,
                                                   int q_heads, int k_heads, int v_heads,
                                                   int head_dim, int v_head_dim) {
  AttentionGeometry g;
  g.batch = batch;
  g.q_len = q_len;
  g.kv_len = kv_len;
  g.q_offset = q_offset;
  g.q_heads = q_heads;
  g.k_heads = k_heads;
  g.v_heads = v_heads;
  g.head_dim = head_dim;
  g.v_head_dim = v_head_dim;
  g.scale = 1.0 / std::sqrt(double(head_dim));
  g.q_row_stride = std::int64_t(q_heads) * head_dim;
  g.kv_row_stride_k = std::int64_t(k_heads) * head_dim;
  g.kv_row_stride_v = std::int64_t(v_heads) * v_head_dim;
  return g;
}

}  // namespace difftx
