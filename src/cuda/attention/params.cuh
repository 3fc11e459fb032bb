// Plain parameter structs shared by the attention launchers and kernels (device pointers, sizes
// and strides already validated by the AttentionPlan and launchers of attention.cpp).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace difftx::cuda::attn {

// One forward call. A "head" is one unit of work per (batch, query tile): a softmax query head
// or a DIFF V1 head (two maps). Component indices are the d-sized slots of q/k.
struct FwdParams {
  const __nv_bfloat16* q;     // (B, T, Hq, d), row stride q_stride
  const __nv_bfloat16* k;     // (B, S, Hk, d), row stride k_stride
  const __nv_bfloat16* v;     // (B, S, Hv, dv), row stride v_stride
  __nv_bfloat16* out;         // (B, T, heads, dv) contiguous
  __nv_bfloat16* out2;        // DIFF V1 only: (B, T, h, dv) = A2 V, or nullptr
  float* lse;                 // (B, Hq, T)
  const float* lambda;        // DIFF V1 only: (1)
  const __nv_bfloat16* gate;  // DIFF V2 only: (B, T, h) gate logits, contiguous
  __nv_bfloat16* att;         // DIFF V2 only: (B, T, 2h, d) per-head outputs (for the backward)
  int batch, q_len, kv_len, q_offset;
  int q_comps, k_comps, v_heads;  // Hq, Hk, Hv
  int heads;                      // softmax: Hq; DIFF V1: Hq / 2
  int n_rep;                      // heads per kv group
  std::int64_t q_stride, k_stride, v_stride;
  float scale_log2;  // softmax scale * log2(e)
  int num_m_blocks;
};

// One backward call (after the preprocess kernel filled delta / lse_log2 and zeroed dq_accum).
struct BwdParams {
  const __nv_bfloat16* q;
  const __nv_bfloat16* k;
  const __nv_bfloat16* v;
  const __nv_bfloat16* dout;  // (B, T, heads, dv) contiguous
  const float* lse_log2;      // (B, Hq, t_pad): lse * log2(e); +inf on padded rows
  const float* delta;         // (B, Hq, t_pad): D = rowsum(dO . O_map) (DIFF: see preprocess)
  float* dq_accum;            // (B, T, Hq, d) f32, contiguous, zeroed
  __nv_bfloat16* dk;          // layout of k
  __nv_bfloat16* dv;          // layout of v
  const float* lambda;
  int batch, q_len, kv_len, q_offset, t_pad;
  int q_comps, k_comps, v_heads, heads, n_rep;
  std::int64_t q_stride, k_stride, v_stride;
  float scale;       // softmax scale
  float scale_log2;  // scale * log2(e)
  int num_n_blocks;
};

// The backward preprocess (bwd_prepost.cuh).
struct PreParams {
  const __nv_bfloat16* dout;  // (B, T, heads, dv)
  const __nv_bfloat16* out;   // (B, T, heads, dv)
  const __nv_bfloat16* out2;  // DIFF V1: (B, T, h, dv) = A2 V
  const float* lse;           // (B, Hq, T)
  const float* lambda;
  float* dlambda;   // += -sum(out2 . dout), or nullptr
  float* lse_log2;  // (B, Hq, t_pad)
  float* delta;     // (B, Hq, t_pad)
  int q_len, t_pad, heads, q_comps;
};

}  // namespace difftx::cuda::attn
