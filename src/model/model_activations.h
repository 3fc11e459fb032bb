// Saved forward activations and reusable backward buffers of Model, sized for one (B, T), and
// the keys/values one attention call reads.
#pragma once

#include <vector>

#include "difftx/model/model.h"

namespace difftx {

struct LayerActivations {
  Tensor rstd1, xn1;     // (N), (N, E): attention-block norm
  Tensor q, k, v;        // (N, q_dim), (N, k_dim), (N, v_dim); q and k after RoPE
  Tensor att;            // raw attention output: V1 (N, h, 2d); V2 (N, 2h, d); softmax = mixed
  Tensor att2;           // V1: A2 V (N, h, 2d)
  Tensor lse;            // (B, q_heads, T)
  Tensor lambda;         // V1: (1)
  Tensor head_rstd;      // V1: (N * h)
  Tensor gate_logits;    // V2: (N, h)
  Tensor mixed;          // (N, attn_out_dim): input of W_o
  Tensor y;              // (N, E): residual after attention
  Tensor rstd2, xn2;     // (N), (N, E): FFN-block norm
  Tensor gate, up, hsw;  // (N, F)
};

struct Model::Activations {
  int batch = 0, seq = 0;
  Tensor ids;                 // (N) i32 on the device
  Tensor targets;             // (N) i32 on the device
  std::vector<Tensor> resid;  // L+1 x (N, E): residual stream entering each layer, and out
  std::vector<LayerActivations> layers;
  Tensor rstdf, xf;  // final norm (N), (N, E)
  Tensor logits;     // (N, V); holds dlogits after the backward's first step
  Tensor losses;     // (N)
  Tensor tmp_e;      // (N, E) scratch
  // Backward buffers, reused by every layer.
  Tensor dresid, dy, dxn, dtmp;  // (N, E)
  Tensor dmixed, datt;           // (N, max attention widths)
  Tensor dq, dk, dv;             // like q, k, v
  Tensor dhsw, dgate, dup;       // (N, F)
  Tensor dgate_logits;           // V2: (N, h)
  Tensor dlambda;                // V1: (1)
};

// What one layer's attention reads beyond its queries: this call's own keys and values
// (training, full sequences) or the cache's prefix with this call's appended (decoding).
struct Model::AttentionKeys {
  Tensor keys;                 // (B * S, k_dim), after RoPE
  Tensor values;               // (B * S, v_dim)
  Tensor att2;                 // V1: A2 V (N, h, 2d) kept for the backward; undefined otherwise
  AttentionGeometry geometry;  // S = kv_len
};

}  // namespace difftx
