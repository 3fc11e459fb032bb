// Paged decode attention on CUDA (bf16 K/V pools, f32 softmax and accumulation): one query token
// per sequence against the tokens its block table lists, softmax (baseline, DIFF V2 before the
// combine) or DIFF V1 with both maps computed in the same pass over K/V, so every K/V row of a
// key/value head is read once for all the query components that share it (GQA groups, the two
// DIFF maps). Long contexts are split across blocks ("flash decoding"): each block reduces a
// range of tokens to partial (max, sum, weighted V) rows, and the last block of a sequence's key/
// value head to finish combines them (one kernel). DIFF V1's per-head RMSNorm may be applied
// before the output is written. Two kernel variants compute the same values; they differ in how
// K/V reach the lanes (PagedAttentionLoads).
// Semantics: Backend::paged_attention_decode (include/difftx/model/backend.h).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "difftx/core/paged_attention.h"

namespace difftx::cuda {

// How a tile of K/V reaches the lanes. staged: copied into shared memory by asynchronous copies,
// the first tile's issued before the kernel waits on the kernels before it (PDL); a latency
// variant, for grids of few blocks with a tile or two each. registers: loaded into registers
// after the wait, more blocks per multiprocessor; for many blocks or long token ranges. The
// launcher picks staged when batch x (blocks per sequence for its key/value heads) is at most a
// quarter of the multiprocessors. Measured on an H200 (bench/engine/results/2026-12-01-h200):
// staged 2-6% faster per 125M DIFF V1 step at batch 1 and 4 (contexts 512 and 4K) and 14% at
// the 1.4B shape's batch 1; 3-35% slower at batch 32 and 128 and at batch 8 with 4K tokens.
// DIFFTX_PAGED_LOADS=staged or registers forces one (read once per process).
enum class PagedAttentionLoads { staged, registers };
PagedAttentionLoads paged_attention_loads(const PagedAttentionGeometry& g, int num_sms);

// Token ranges per (sequence, key/value head) for a batch of g.batch sequences on a GPU with
// `num_sms` multiprocessors: enough blocks to fill the GPU twice, at least 64 tokens each; for
// the staged variant no more than fit on the GPU at once (DIFFTX_PAGED_ONE_WAVE=0: as many).
int paged_attention_splits(const PagedAttentionGeometry& g, int num_sms);
// Scratch bytes for the partial results and arrival counters of any batch of up to g.batch
// sequences. The workspace must be zeroed before its first use; every call leaves the counters
// at zero again.
std::size_t paged_attention_workspace_bytes(const PagedAttentionGeometry& g, int num_sms);

// DIFF V1's per-head RMSNorm folded into the output: out = bf16(scale * x * rstd * weight) over
// each head's 2d values x (rounded to bf16 first, as the unfused op reads them); rstd (B,
// out_heads) f32 written too.
struct PagedHeadNorm {
  const void* weight = nullptr;  // (2d) f32 or bf16
  bool weight_f32 = true;
  float eps = 0.f;
  float scale = 1.f;
  float* rstd = nullptr;
};

// Requirements (checked by the caller): head_dim 64 or 128; softmax: k_heads == v_heads,
// q_heads % k_heads == 0, v_head_dim == head_dim; diff: k_heads == 2 v_heads, q_heads %
// (2 v_heads) == 0, v_head_dim == 2 head_dim; pools 16-byte aligned; lambda non-null for diff;
// head_norm null, or for diff only.
void launch_paged_attention_decode(const PagedAttentionGeometry& g, const __nv_bfloat16* q,
                                   const __nv_bfloat16* k_pool, const __nv_bfloat16* v_pool,
                                   const std::int32_t* block_tables,
                                   const std::int32_t* context_lens, const float* lambda,
                                   __nv_bfloat16* out, const PagedHeadNorm* head_norm,
                                   void* workspace, std::size_t workspace_bytes, int num_sms,
                                   cudaStream_t stream);

}  // namespace difftx::cuda
