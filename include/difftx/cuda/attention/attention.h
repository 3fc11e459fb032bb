// Fused flash attention on CUDA tensor cores (bf16 in, fp32 accumulation and softmax): the
// softmax baseline / DIFF V2 attention and the DIFF V1 differential attention, forward and
// backward, causal, GQA. Raw-pointer API (no Tensor dependency); semantics and layouts are
// exactly those of Backend::softmax_attention_* and Backend::diff_attention_*
// (include/difftx/model/backend.h). Design notes: docs/cuda-attention.md.
//
// A call is made in two steps: an AttentionPlan checks the geometry once against every
// requirement of the call's kind and kernel family (and derives the operand sizes the caller
// checks its buffers against), then a launcher takes the plan and device pointers.
//
// Layouts (all device pointers; bf16 = __nv_bfloat16):
//   q    (B, T, Hq, d)   token row stride g.q_row_stride     (>= Hq*d)
//   k    (B, S, Hk, d)   token row stride g.kv_row_stride_k  (>= Hk*d)
//   v    (B, S, Hv, dv)  token row stride g.kv_row_stride_v  (>= Hv*dv)
//   out  (B, T, Ho, dv)  contiguous (row stride Ho*dv); Ho = Hq (softmax) or Hq/2 (DIFF V1)
//   lse  (B, Hq, T) f32  natural-log log-sum-exp of the scaled scores of every query row;
//                        DIFF V1: row 2i is A1 of head i, row 2i+1 is A2.
//   dout (B, T, Ho, dv)  contiguous, like out.
//   dq, dk, dv: the layouts (and row strides) of q, k, v, so a fused dqkv buffer works; they are
//   overwritten (=). dlambda (1) f32 is accumulated (+=).
// Geometry requirements (AttentionPlan): d in {64, 128}; softmax: dv == d and Hv == Hk and
// Hq % Hk == 0; DIFF V1: dv == 2d, Hq == 2h, Hk == 2*Hv, h % Hv == 0; DIFF V2 (fused): the
// softmax rules, Hq even and (Hq / Hk) even, and the sm90 kernel family; kv_len >= q_offset +
// q_len; every row stride a multiple of 8 elements; q_len and kv_len up to 4M tokens (64K is
// exercised by the tests); batch and Hq <= 65535. Launchers check their pointers (non-null,
// 16-byte aligned). Violations throw difftx::Error.
// All launches are asynchronous on `stream`; errors of the launch itself throw difftx::Error.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <optional>

#include "difftx/model/attention_geometry.h"

namespace difftx::cuda {

using bf16 = __nv_bfloat16;

// ---- kernel family

enum class AttentionKernels : std::uint8_t {
  mma,   // portable mma.sync kernels (sm_80 and later)
  sm90,  // Hopper wgmma kernels fed by TMA (compute capability 9.0, built for sm_90a)
};
const char* attention_kernels_name(AttentionKernels kernels);

// The family for CUDA device `device`: sm90 on compute capability 9.0, mma elsewhere; the
// environment variable DIFFTX_ATTENTION_KERNELS=mma forces mma (the tests run both). Reads the
// environment and queries the device: call it once (CudaBackend does at construction) and pass
// the result down.
AttentionKernels select_attention_kernels(int device);

// ---- the checked plan of one call

enum class AttentionKind : std::uint8_t {
  softmax,  // baseline, and DIFF V2's attention when it is not fused
  diff_v1,  // differential attention (A1 - lambda A2) V
  diff_v2,  // DIFF V2 forward fused with its gated combine (sm90 kernels only)
};
const char* attention_kind_name(AttentionKind kind);

class AttentionPlan {
 public:
  // Throws difftx::Error naming the requirement (see the top of this file) that g breaks.
  static AttentionPlan make(const AttentionGeometry& g, AttentionKind kind,
                            AttentionKernels kernels);
  // The plan, or nullopt when g does not meet the requirements: for choosing between a fused
  // kernel and a fallback (CudaBackend::diff_v2_attention_forward).
  static std::optional<AttentionPlan> try_make(const AttentionGeometry& g, AttentionKind kind,
                                               AttentionKernels kernels);

  const AttentionGeometry& geometry() const { return g_; }
  AttentionKind kind() const { return kind_; }
  AttentionKernels kernels() const { return kernels_; }

  // Units of output per token: Hq (softmax), Hq / 2 (DIFF V1 heads, DIFF V2 head pairs).
  int out_heads() const { return kind_ == AttentionKind::softmax ? g_.q_heads : g_.q_heads / 2; }
  std::int64_t q_tokens() const { return std::int64_t(g_.batch) * g_.q_len; }    // B*T
  std::int64_t kv_tokens() const { return std::int64_t(g_.batch) * g_.kv_len; }  // B*S
  // Elements of out / dout (B, T, Ho, dv) and of lse (B, Hq, T).
  std::int64_t out_numel() const { return q_tokens() * out_heads() * g_.v_head_dim; }
  std::int64_t lse_numel() const { return std::int64_t(g_.batch) * g_.q_heads * g_.q_len; }
  // DIFF V2: att (B, T, 2h, d) and gate (B, T, h).
  std::int64_t att_numel() const { return q_tokens() * g_.q_heads * g_.v_head_dim; }
  std::int64_t gate_numel() const { return q_tokens() * out_heads(); }
  // Elements from the first to the last one read of q, k, v (views into wider rows): the last
  // token's row start plus the used width.
  std::int64_t q_extent() const {
    return (q_tokens() - 1) * g_.q_row_stride + std::int64_t(g_.q_heads) * g_.head_dim;
  }
  std::int64_t k_extent() const {
    return (kv_tokens() - 1) * g_.kv_row_stride_k + std::int64_t(g_.k_heads) * g_.head_dim;
  }
  std::int64_t v_extent() const {
    return (kv_tokens() - 1) * g_.kv_row_stride_v + std::int64_t(g_.v_heads) * g_.v_head_dim;
  }
  // Bytes of device scratch the backward needs (an fp32 dq accumulator and the per-row dot
  // products D): pass a buffer of at least this size to the *_backward launchers, or nullptr
  // to let them allocate and free it on the stream (cudaMallocAsync / cudaFreeAsync).
  std::size_t backward_workspace_bytes() const;

 private:
  AttentionPlan(const AttentionGeometry& g, AttentionKind kind, AttentionKernels kernels)
      : g_(g), kind_(kind), kernels_(kernels) {}

  AttentionGeometry g_;
  AttentionKind kind_;
  AttentionKernels kernels_;
};

// ---- launchers (each requires a plan of its kind)

// softmax: out = softmax(q k^T) v.
void softmax_attention_forward(const AttentionPlan& plan, const bf16* q, const bf16* k,
                               const bf16* v, bf16* out, float* lse, cudaStream_t stream);
void softmax_attention_backward(const AttentionPlan& plan, const bf16* q, const bf16* k,
                                const bf16* v, const bf16* out, const float* lse, const bf16* dout,
                                bf16* dq, bf16* dk, bf16* dv, void* workspace,
                                std::size_t workspace_bytes, cudaStream_t stream);

// diff_v2: softmax attention over the 2h query heads (Hq = 2h, dv == d, the heads 2i, 2i+1 of
// a pair share a kv head) with the gated combine in the epilogue: att (B,T,2h,d) = the
// per-head outputs (kept for the backward, which is v2_combine_backward +
// softmax_attention_backward), out (B,T,h,d) = att[2i] - sigmoid(gate[i]) att[2i+1], gate
// (B,T,h) bf16 logits.
void diff_v2_attention_forward(const AttentionPlan& plan, const bf16* q, const bf16* k,
                               const bf16* v, const bf16* gate, bf16* att, bf16* out, float* lse,
                               cudaStream_t stream);

// diff_v1: out (B,T,h,2d) = (A1 - lambda A2) V; out2 = A2 V (may be nullptr in inference, then
// it is not written). lambda: one f32 on the device.
void diff_attention_forward(const AttentionPlan& plan, const bf16* q, const bf16* k, const bf16* v,
                            const float* lambda, bf16* out, bf16* out2, float* lse,
                            cudaStream_t stream);
void diff_attention_backward(const AttentionPlan& plan, const bf16* q, const bf16* k, const bf16* v,
                             const float* lambda, const bf16* out, const bf16* out2,
                             const float* lse, const bf16* dout, bf16* dq, bf16* dk, bf16* dv,
                             float* dlambda, void* workspace, std::size_t workspace_bytes,
                             cudaStream_t stream);

}  // namespace difftx::cuda
