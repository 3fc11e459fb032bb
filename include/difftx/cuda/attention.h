// Fused flash attention on CUDA tensor cores (bf16 in, fp32 accumulation and softmax): the
// softmax baseline / DIFF V2 attention and the DIFF V1 differential attention, forward and
// backward, causal, GQA. Raw-pointer API (no Tensor dependency); semantics and layouts are
// exactly those of Backend::softmax_attention_* and Backend::diff_attention_*
// (include/difftx/model/backend.h). Design notes: docs/cuda-attention.md.
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
// Requirements (checked; violations throw difftx::Error): d in {64, 128}; softmax: dv == d and
// Hv == Hk and Hq % Hk == 0; DIFF V1: dv == 2d, Hq == 2h, Hk == 2*Hv, h % Hv == 0;
// kv_len >= q_offset + q_len; every pointer 16-byte aligned and every row stride a multiple of
// 8 elements; q_len and kv_len up to 4M tokens (64K is exercised by the tests); batch and Hq
// <= 65535. Kernels: Hopper wgmma kernels on compute capability 9.0 (built for sm_90a), portable
// mma.sync kernels elsewhere (or with DIFFTX_ATTENTION_KERNELS=mma).
// All calls are asynchronous on `stream`; errors of the launch itself throw difftx::Error.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>

namespace difftx {
struct AttentionGeometry;  // include/difftx/model/backend.h (not included here: it pulls in fmt,
                           // which nvcc's C++20 mode rejects, and .cu files include this header)
}  // namespace difftx

namespace difftx::cuda {

using bf16 = __nv_bfloat16;

// ---- softmax attention (baseline; DIFF V2 before its combine op): out = softmax(q k^T) v.
void softmax_attention_forward(const AttentionGeometry& g, const bf16* q, const bf16* k,
                               const bf16* v, bf16* out, float* lse, cudaStream_t stream);

// Bytes of device scratch the backward passes need (an fp32 dq accumulator and the per-row
// dot products D). Pass a buffer of at least this size to the *_backward calls, or nullptr to
// let them allocate and free it on `stream` (cudaMallocAsync / cudaFreeAsync).
std::size_t attention_backward_workspace_bytes(const AttentionGeometry& g);

void softmax_attention_backward(const AttentionGeometry& g, const bf16* q, const bf16* k,
                                const bf16* v, const bf16* out, const float* lse,
                                const bf16* dout, bf16* dq, bf16* dk, bf16* dv,
                                void* workspace, std::size_t workspace_bytes,
                                cudaStream_t stream);

// ---- DIFF V2 forward, fused: softmax attention over the 2h query heads (Hq = 2h, dv == d,
// (Hq / Hk) even so the heads 2i, 2i+1 of a pair share a kv head) with the gated combine in the
// epilogue: att (B,T,2h,d) = the per-head outputs (kept for the backward, which is
// v2_combine_backward + softmax_attention_backward), out (B,T,h,d) = att[2i] -
// sigmoid(gate[i]) att[2i+1], gate (B,T,h) bf16 logits. Hopper (sm_90a) only:
// diff_v2_attention_fused_available() says whether this GPU runs it.
bool diff_v2_attention_fused_available();
void diff_v2_attention_forward(const AttentionGeometry& g, const bf16* q, const bf16* k,
                               const bf16* v, const bf16* gate, bf16* att, bf16* out, float* lse,
                               cudaStream_t stream);

// ---- DIFF V1: out (B,T,h,2d) = (A1 - lambda A2) V; out2 = A2 V (may be nullptr in inference,
// then it is not written). lambda: one f32 on the device.
void diff_attention_forward(const AttentionGeometry& g, const bf16* q, const bf16* k,
                            const bf16* v, const float* lambda, bf16* out, bf16* out2,
                            float* lse, cudaStream_t stream);

void diff_attention_backward(const AttentionGeometry& g, const bf16* q, const bf16* k,
                             const bf16* v, const float* lambda, const bf16* out,
                             const bf16* out2, const float* lse, const bf16* dout, bf16* dq,
                             bf16* dk, bf16* dv, float* dlambda, void* workspace,
                             std::size_t workspace_bytes, cudaStream_t stream);

}  // namespace difftx::cuda
