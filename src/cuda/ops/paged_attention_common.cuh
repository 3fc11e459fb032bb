// Paged decode attention, the parts its kernel variants share (private to src/cuda/ops): the
// kernel parameters, the split arithmetic, and a block's end (the output, or partial rows and
// the combine of the splits by the last block to finish). The variants (paged_attention.cu,
// paged_attention_staged.cu) differ in how a tile of K/V reaches the lanes.
//
// Grid (v_heads * row_groups, B, splits) (split-major: every sequence's first token ranges come
// first in block order, so they start first; the blocks past a short sequence's end, which only
// leave, start last), or (splits, v_heads * row_groups, B) with DIFFTX_PAGED_SPLIT_MAJOR=0 (for
// measurement); kRegisterThreads or kStagedThreads threads. A block owns one sequence b, one
// key/value head j, R query rows of the components that read j (its row group) and one token range
// of the sequence, taken in tiles of kTile tokens.
#pragma once

#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

#include "device_util.cuh"

namespace difftx::cuda::paged {

// Threads per block: the register variant's, and the staged variant's (256 for blocks of 8 query
// rows, whose accumulators would spill at 512, and with DIFFTX_PAGED_STAGED_THREADS=256, for
// measurement). The shared parts below take the block's count as their template parameter kT.
// The staged variant had 128 threads until the tenth session. On an H200
// (bench/engine/results/2026-12-02-h200-c) 512 against 256: 3-11% faster per step with 4K tokens
// at batch 1-4, 0-5% at 512 tokens on the 1.4B shape, 3% slower for 125M DIFF V1 at batch 1 with
// 512 tokens; 128 was 2-21% slower than 256 at the 1.4B shape.
constexpr int kRegisterThreads = 128;
constexpr int kStagedThreads = 512;
constexpr int kTile = 64;
constexpr int kMaxRows = 8;
constexpr int kMaxSplits = 64;

struct PagedParams {
  const bf16* q;
  i64 q_stride;
  const bf16* k_pool;
  const bf16* v_pool;
  i64 k_width, v_width;
  const std::int32_t* tables;
  int max_blocks, block_size;
  const std::int32_t* lens;
  const float* lambda;
  bf16* out;
  float* ws_acc;           // (B, groups, splits, R, dv)
  float* ws_ml;            // (B, groups, splits, R, 2)
  unsigned* counters_end;  // counter of (b, block row gy) at counters_end[-1 - (b * groups + gy)]
  const void* norm_w;      // head RMSNorm gain (dv), f32 or bf16; null: no norm
  bool norm_w_f32;
  float norm_eps, norm_scale;
  float* head_rstd;  // (B, out_heads) with the norm
  int group_rows;    // query components per key/value head (G)
  int row_groups;    // blocks per key/value head (ceil(G / R))
  int num_splits;
  int groups;        // block rows per sequence: v_heads * row_groups
  bool split_major;  // the grid's order (above)
  int out_heads;
  float scale_log2;
  unsigned long long* timeline;  // diagnostics: (blocks, kStamps) global-timer stamps, or null
  bool early_trigger;    // lets the next kernel launch before the wait (DIFFTX_ATTN_EARLY_TRIGGER)
  bool release_arrival;  // one acquire-release atomic arrival (else DIFFTX_ATTN_ARRIVAL=fence)
};

// Diagnostics (DIFFTX_PAGED_TIMELINE, paged_attention.cu): thread 0 of each block records the
// global timer (ns) at these points of one call, so a decode step's attention can be taken
// apart in place (PDL, the kernels around it) rather than in isolation.
enum Stamp : int {
  kStampStart,    // the block runs
  kStampLength,   // its sequence's length is known (staged)
  kStampSlots,    // its first tile's slots are in shared memory (staged)
  kStampIssued,   // the first tile's copies are issued (staged) / the block is about to wait
  kStampWaited,   // the kernels before have completed (PDL wait returned)
  kStampLanded,   // the first tile is in shared memory (staged) / done (registers)
  kStampTiles,    // every tile is done
  kStampReduced,  // the lanes' sums are in shared memory
  kStampArrived,  // the partial rows are out and the block's arrival is counted
  kStampDone,     // the block's last instruction (the combine and the output, if it did them)
  kStamps
};
__device__ __forceinline__ void stamp(const PagedParams& p, Stamp s) {
  if (p.timeline == nullptr || threadIdx.x != 0) return;
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  const i64 block = (i64(blockIdx.z) * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  p.timeline[block * kStamps + s] = t;
}

// The block's split (token range), block row (key/value head x row group) and sequence.
struct BlockCoords {
  int split, gy, b;
};
__device__ __forceinline__ BlockCoords block_coords(const PagedParams& p) {
  if (p.split_major) return {int(blockIdx.z), int(blockIdx.x), int(blockIdx.y)};
  return {int(blockIdx.x), int(blockIdx.y), int(blockIdx.z)};
}

// Tokens per split of a sequence of ctx tokens: a multiple of the tile.
__device__ __forceinline__ int split_tokens(int ctx, int splits) {
  const int per = (ctx + splits - 1) / splits;
  return (per + kTile - 1) / kTile * kTile;
}

__device__ __forceinline__ void unpack8(const uint4& raw, float* f) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 x = __bfloat1622float2(h[i]);
    f[2 * i] = x.x;
    f[2 * i + 1] = x.y;
  }
}

// ---- the three phases of a tile, shared by the variants. Lane roles: for the scores, lane kc of
// a token's kKch key chunks holds key elements e0..e0+7 of component comp (DIFF V1: 0 or 1);
// for the values, lane vc of a token's value chunks holds channels 8 vc..8 vc+7.

// A. One key chunk's part of the scores of token tt: the lane's 8 key elements dotted with each
// query row the lane serves (q_at(rr, e): element e0 + e of the rr-th such row, already scaled),
// summed over the kLpc lanes of the component by shuffles; the component's first lane stores
// them (-inf for a token past the tile's n_tile).
template <int R, bool kDiff, int kLpc, typename QAt>
__device__ __forceinline__ void score_chunk(const uint4& raw, QAt q_at, int comp, bool leader,
                                            int tt, int n_tile, float (*s)[kTile]) {
  constexpr int kRowsPerComp = kDiff ? R / 2 : R;
  float kf[8];
  unpack8(raw, kf);
  float part[kRowsPerComp];
#pragma unroll
  for (int rr = 0; rr < kRowsPerComp; ++rr) {
    float d = 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e) d = fmaf(q_at(rr, e), kf[e], d);
    part[rr] = d;
  }
#pragma unroll
  for (int off = kLpc / 2; off > 0; off >>= 1) {
#pragma unroll
    for (int rr = 0; rr < kRowsPerComp; ++rr)
      part[rr] += __shfl_xor_sync(0xffffffffu, part[rr], off);
  }
  if (leader) {
#pragma unroll
    for (int rr = 0; rr < kRowsPerComp; ++rr) {
      s[kDiff ? 2 * rr + comp : rr][tt] = tt < n_tile ? part[rr] : -INFINITY;
    }
  }
}

// B. Online softmax of a tile's scores, one warp per row, base 2 (q was scaled by scale * log2
// e): s becomes the probabilities; m and l are the rows' running max and sum, alpha the factor
// that rescales what was accumulated before this tile (0 on the first tile).
template <int kT, int R>
__device__ __forceinline__ void softmax_tile(float (*s)[kTile], float* m, float* l, float* alpha) {
  static_assert(kTile == 64, "two scores per lane");
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int r = warp; r < R; r += kT / 32) {
    const float v0 = s[r][lane], v1 = s[r][lane + 32];
    const float m_old = m[r];
    const float m_new = fmaxf(m_old, warp_max(fmaxf(v0, v1)));
    const float p0 = exp2f(v0 - m_new), p1 = exp2f(v1 - m_new);
    s[r][lane] = p0;
    s[r][lane + 32] = p1;
    const float sum = warp_sum(p0 + p1);
    __syncwarp();  // every lane has read m[r] before lane 0 rewrites it
    if (lane == 0) {
      const float a = exp2f(m_old - m_new);
      l[r] = l[r] * a + sum;
      m[r] = m_new;
      alpha[r] = a;
    }
  }
}

// C. One value chunk of token tt times each row's probability, into the lane's accumulators.
template <int R>
__device__ __forceinline__ void accumulate_chunk(const uint4& raw, const float (*s)[kTile], int tt,
                                                 float (&acc)[R][8]) {
  float vf[8];
  unpack8(raw, vf);
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const float w = s[r][tt];
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[r][e] = fmaf(w, vf[e], acc[r][e]);
  }
}

// Before a tile's values: what was accumulated is rescaled by each row's alpha.
template <int R>
__device__ __forceinline__ void rescale(float (&acc)[R][8], const float* alpha) {
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const float a = alpha[r];
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[r][e] *= a;
  }
}

// What a block reads that no kernel of a decode step writes, loaded before the block waits on the
// kernels before it (PDL) so that its end does not wait on memory for it: DIFF V1's lambda and the
// head norm's gain at this lane's channels (lane + 32 i).
template <int kDv, bool kDiff>
struct BlockConstants {
  float gain[kDiff ? kDv / 32 : 1];
  float lambda;
};

template <int kDv, bool kDiff>
__device__ __forceinline__ BlockConstants<kDv, kDiff> load_block_constants(const PagedParams& p) {
  BlockConstants<kDv, kDiff> k{};
  if constexpr (kDiff) {
    k.lambda = __ldg(p.lambda);
    if (p.norm_w) {
      const int lane = threadIdx.x & 31;
#pragma unroll
      for (int i = 0; i < kDv / 32; ++i) {
        const int c = lane + 32 * i;
        k.gain[i] = p.norm_w_f32 ? __ldg(static_cast<const float*>(p.norm_w) + c)
                                 : __bfloat162float(__ldg(static_cast<const bf16*>(p.norm_w) + c));
      }
    }
  }
  return k;
}

// The block's output heads from shared memory: head hh's dv values at vals[row(hh) * kDv], row(hh)
// = 2 hh for DIFF V1 (the first map's row) and hh otherwise; rounded to bf16, then, with a head
// norm (DIFF V1 only), out = bf16(scale * x * rstd * gain) with rstd over the rounded values
// (rmsnorm_forward's arithmetic).
template <int kT, int kDv, bool kDiff>
__device__ void write_output(const PagedParams& p, const BlockConstants<kDv, kDiff>& kc,
                             const float* vals, int b, int head0, int heads) {
  constexpr int kRowStep = kDiff ? 2 : 1;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  bf16* out = p.out + (i64(b) * p.out_heads + head0) * kDv;
  if (!kDiff || !p.norm_w) {
    for (int i = tid; i < heads * kDv; i += kT) {
      out[i] = __float2bfloat16(vals[(i / kDv) * kRowStep * kDv + i % kDv]);
    }
    return;
  }
  if constexpr (kDiff) {
    for (int hh = warp; hh < heads; hh += kT / 32) {
      const float* v = vals + hh * kRowStep * kDv;
      float x[kDv / 32];
      float ss = 0.f;
#pragma unroll
      for (int i = 0; i < kDv / 32; ++i) {
        x[i] = __bfloat162float(__float2bfloat16(v[lane + 32 * i]));
        ss += x[i] * x[i];
      }
      ss = warp_sum(ss);
      const float r = 1.f / sqrtf(ss / float(kDv) + p.norm_eps);
      if (lane == 0) p.head_rstd[i64(b) * p.out_heads + head0 + hh] = r;
#pragma unroll
      for (int i = 0; i < kDv / 32; ++i) {
        out[i64(hh) * kDv + lane + 32 * i] = __float2bfloat16(p.norm_scale * x[i] * r * kc.gain[i]);
      }
    }
  }
}

// Thread groups of a kT-thread block that share the split combine (combine_splits): each group
// has a thread per channel of the block's heads (DIFF V1's second map rides along with the
// first) and loads its own batches of 8 splits, so that a wide block takes up to 8 x groups
// splits in one round trip to L2 without more registers per thread. Taken from 4 groups on (the
// staged variant at 512 threads: DIFF V1 at d = 64 and the softmax kinds with one row per head;
// up to 32 splits at once, 64 with 8 groups); 1 otherwise. Two groups (DIFF V1 at d = 128) took
// the kernel from 72 to 74 registers and made the 1.4B shape's step 0.7% slower on an H200
// (bench/engine/results/2026-12-03-h200-g). The register variant passes 1 always.
template <int kT, int kDv, int R, bool kDiff>
constexpr int combine_groups() {
  constexpr int span = (kDiff ? R / 2 : R) * kDv;
  constexpr int groups = kT / span;
  return groups < 4 ? 1 : (groups > kMaxSplits / 8 ? kMaxSplits / 8 : groups);
}

// The last block of a (sequence, block row) `row` combines the `used` splits' partial rows (read
// from L2: other blocks wrote them) into vals, laid out as write_output reads them. Loads go out
// before they are needed: the (max, sum) pairs of all splits together with the first 8 splits'
// partial outputs of the thread's first two channels, then the partial outputs 8 splits at a
// time. One warp per row turns the pairs into each split's weight; the sums run in split order.
// With kGroups > 1 (combine_groups) group g takes the batches of splits 8 g, 8 (g + kGroups), ...
// of one channel per thread, its first batch loaded early as above, and group 0 adds the other
// groups' sums to its own in group order (a fixed order: the result does not depend on timing).
template <int kT, int kDv, int R, bool kDiff, int kGroups>
__device__ void combine_splits(const PagedParams& p, const BlockConstants<kDv, kDiff>& kc, i64 row,
                               int used, int heads, float* vals) {
  constexpr int kBatch = 8;
  constexpr int kSpan = (kDiff ? R / 2 : R) * kDv;  // the block's channels at most
  static_assert(kGroups == 1 || kGroups * kSpan <= kT, "a thread per channel in each group");
  static_assert(kMaxSplits <= 64, "two splits per lane");
  constexpr int kThreads = kGroups == 1 ? kT : kSpan;        // threads per group
  constexpr int kItems = (kSpan + kThreads - 1) / kThreads;  // channels per thread
  constexpr int kEarly = kItems < 2 ? kItems : 2;  // items whose first batch is loaded early
  __shared__ float ml_s[kMaxSplits * R * 2];       // (split, row, {max, sum})
  __shared__ float scale_s[kMaxSplits][R];         // exp2(m_s - M) / L per split and row
  __shared__ float part_s[kGroups > 1 ? kGroups - 1 : 1][kGroups > 1 ? kSpan : 1][2];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int group = kGroups == 1 ? 0 : tid / kThreads;
  const int ch = kGroups == 1 ? tid : tid % kThreads;
  const int first_split = group * kBatch;  // the group's first split
  // threads past the groups only help with the weights
  const bool grouped = kGroups == 1 || group < kGroups;
  const int n = heads * kDv;  // channels of the block's heads
  const i64 base = row * p.num_splits;
  // One batch of partial outputs of channel i (rows r0 and r0 + 1) from split s0 on.
  auto load_batch = [&](int i, int s0, float(&a0)[kBatch], float(&a1)[kBatch]) {
    const int hh = i / kDv, c = i % kDv, r0 = kDiff ? 2 * hh : hh;
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const float* a = p.ws_acc + (base + s0 + u) * R * kDv;
      a0[u] = s0 + u < used ? __ldcg(&a[r0 * kDv + c]) : 0.f;
      a1[u] = kDiff && s0 + u < used ? __ldcg(&a[(r0 + 1) * kDv + c]) : 0.f;
    }
  };
  float early0[kEarly][kBatch], early1[kEarly][kBatch];
#pragma unroll
  for (int k = 0; k < kEarly; ++k) {
    if (grouped && ch + k * kThreads < n) {
      load_batch(ch + k * kThreads, first_split, early0[k], early1[k]);
    }
  }
  for (int i = tid; i < used * R * 2; i += kT) {
    ml_s[i] = __ldcg(&p.ws_ml[base * R * 2 + i]);
  }
  __syncthreads();
  for (int r = warp; r < R; r += kT / 32) {
    const bool in0 = lane < used, in1 = lane + 32 < used;
    const float m0 = in0 ? ml_s[(lane * R + r) * 2] : -INFINITY;
    const float m1 = in1 ? ml_s[((lane + 32) * R + r) * 2] : -INFINITY;
    const float mx = warp_max(fmaxf(m0, m1));
    const float e0 = in0 ? exp2f(m0 - mx) : 0.f, e1 = in1 ? exp2f(m1 - mx) : 0.f;
    const float total = warp_sum((in0 ? e0 * ml_s[(lane * R + r) * 2 + 1] : 0.f) +
                                 (in1 ? e1 * ml_s[((lane + 32) * R + r) * 2 + 1] : 0.f));
    if (in0) scale_s[lane][r] = e0 / total;
    if (in1) scale_s[lane + 32][r] = e1 / total;
  }
  __syncthreads();
  // The group's sums (o0, o1) of channel i over its batches; first0 / first1 hold its first batch
  // when `have_first`.
  auto group_sums = [&](int i, const float(&first0)[kBatch], const float(&first1)[kBatch],
                        bool have_first, float& o0, float& o1) {
    const int r0 = kDiff ? 2 * (i / kDv) : i / kDv;
    o0 = 0.f, o1 = 0.f;
    for (int s0 = first_split; s0 < used; s0 += kBatch * kGroups) {
      float a0[kBatch], a1[kBatch];
      if (have_first && s0 == first_split) {
#pragma unroll
        for (int u = 0; u < kBatch; ++u) a0[u] = first0[u], a1[u] = first1[u];
      } else {
        load_batch(i, s0, a0, a1);
      }
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
        if (s0 + u >= used) break;
        o0 = fmaf(scale_s[s0 + u][r0], a0[u], o0);
        if (kDiff) o1 = fmaf(scale_s[s0 + u][r0 + 1], a1[u], o1);
      }
    }
  };
  auto store = [&](int i, float o0, float o1) {
    const int r0 = kDiff ? 2 * (i / kDv) : i / kDv;
    vals[r0 * kDv + i % kDv] = kDiff ? o0 - kc.lambda * o1 : o0;
  };
  if constexpr (kGroups == 1) {
#pragma unroll
    for (int k = 0; k < kEarly; ++k) {
      if (tid + k * kT < n) {
        float o0, o1;
        group_sums(tid + k * kT, early0[k], early1[k], true, o0, o1);
        store(tid + k * kT, o0, o1);
      }
    }
    for (int i = tid + kEarly * kT; i < n; i += kT) {
      float o0, o1;
      group_sums(i, early0[0], early1[0], false, o0, o1);
      store(i, o0, o1);
    }
  } else {
    float o0 = 0.f, o1 = 0.f;
    if (grouped && ch < n) group_sums(ch, early0[0], early1[0], true, o0, o1);
    if (grouped && group > 0 && ch < n) {
      part_s[group - 1][ch][0] = o0;
      part_s[group - 1][ch][1] = o1;
    }
    __syncthreads();
    if (group == 0 && ch < n) {
#pragma unroll
      for (int g = 1; g < kGroups; ++g) {
        o0 += part_s[g - 1][ch][0];
        o1 += part_s[g - 1][ch][1];
      }
      store(ch, o0, o1);
    }
  }
}

// The block's query rows (R of d elements from component qc0 of sequence b; rows past rows_here
// zero) into q, scaled by scale * log2 e.
template <int kT, int R, int D>
__device__ __forceinline__ void load_query(const PagedParams& p, float (*q)[D], int b, int qc0,
                                           int rows_here) {
  for (int i = threadIdx.x; i < R * D; i += kT) {
    const int r = i / D, e = i % D;
    q[r][e] = r < rows_here
                  ? __bfloat162float(p.q[i64(b) * p.q_stride + i64(qc0 + r) * D + e]) * p.scale_log2
                  : 0.f;
  }
}

// A sequence with nothing to attend: a zero output, written by its first split's blocks.
template <int kT, int R, int kDv, bool kDiff>
__device__ void write_empty_output(const PagedParams& p, const BlockConstants<kDv, kDiff>& kc,
                                   float (*red)[kDv], int b, int head0, int heads) {
  if (block_coords(p).split != 0) return;
  for (int i = threadIdx.x; i < R * kDv; i += kT) red[i / kDv][i % kDv] = 0.f;
  __syncthreads();
  write_output<kT, kDv, kDiff>(p, kc, red[0], b, head0, heads);
}

// A device-scope atomic add with acquire-release order; returns the old value.
__device__ __forceinline__ unsigned atomic_add_acq_rel(unsigned* address, unsigned value) {
  unsigned old;
  asm volatile("atom.add.acq_rel.gpu.u32 %0, [%1], %2;"
               : "=r"(old)
               : "l"(address), "r"(value)
               : "memory");
  return old;
}

// A block's end, once red (R, kDv) holds its un-normalized outputs and m / l its rows' (max,
// sum): with one split (kFinal, or a sequence short enough) the output itself; otherwise the
// partial rows to the workspace, an arrival on the (sequence, block row)'s counter, and, in the
// last block to arrive, the combine of the splits (in split order, so the result does not depend
// on which block that is; kCombineGroups thread groups share it, combine_groups) and the
// counter's reset.
template <int kT, int D, int R, bool kDiff, bool kFinal, int kCombineGroups = 1>
__device__ void finish_block(const PagedParams& p,
                             const BlockConstants<kDiff ? 2 * D : D, kDiff>& kc,
                             float (*red)[kDiff ? 2 * D : D], const float* m, const float* l,
                             int ctx, int per, int heads, int head0) {
  constexpr int kDv = kDiff ? 2 * D : D;
  const int tid = threadIdx.x;
  const auto [split, gy, b] = block_coords(p);
  const int used = (ctx + per - 1) / per;  // splits with tokens
  if (kFinal || used == 1) {
    const float lambda = kDiff ? kc.lambda : 0.f;
    for (int i = tid; i < heads * kDv; i += kT) {  // in place: row 2hh (hh) of head hh
      const int hh = i / kDv, c = i % kDv;
      if (kDiff) {
        red[2 * hh][c] = red[2 * hh][c] / l[2 * hh] - lambda * (red[2 * hh + 1][c] / l[2 * hh + 1]);
      } else {
        red[hh][c] = red[hh][c] / l[hh];
      }
    }
    __syncthreads();
    write_output<kT, kDv, kDiff>(p, kc, red[0], b, head0, heads);
    stamp(p, kStampDone);
    return;
  }
  const i64 row = i64(b) * p.groups + gy;  // the (sequence, block row)
  const i64 base = row * p.num_splits + split;
  for (int i = tid; i < R * kDv; i += kT) p.ws_acc[base * R * kDv + i] = red[i / kDv][i % kDv];
  if (tid < R) {
    p.ws_ml[(base * R + tid) * 2] = m[tid];
    p.ws_ml[(base * R + tid) * 2 + 1] = l[tid];
  }
  // Arrive; the last of the `used` blocks with tokens combines. Either every thread fences its
  // own stores (sequentially consistent, membar.gl) before thread 0 counts the arrival, or
  // (release_arrival, the default) thread 0 counts it with one acquire-release atomic after
  // the block's barrier: the barrier orders the other threads' stores before that release
  // (cumulativity), and the barrier after it orders the acquire before the combine's loads, which
  // read L2 (__ldcg), so no stale L1 line is read either way.
  __shared__ bool last_s;
  unsigned* counter = p.counters_end - 1 - row;
  if (p.release_arrival) {
    __syncthreads();
    if (tid == 0) last_s = atomic_add_acq_rel(counter, 1u) == unsigned(used - 1);
  } else {
    __threadfence();
    __syncthreads();
    if (tid == 0) last_s = atomicAdd(counter, 1u) == unsigned(used - 1);
  }
  __syncthreads();
  stamp(p, kStampArrived);
  if (!last_s) {
    stamp(p, kStampDone);
    return;
  }
  if (!p.release_arrival) __threadfence();
  if (tid == 0) *counter = 0u;  // ready for the next call
  combine_splits<kT, kDv, R, kDiff, kCombineGroups>(p, kc, row, used, heads, red[0]);
  __syncthreads();
  write_output<kT, kDv, kDiff>(p, kc, red[0], b, head0, heads);
  stamp(p, kStampDone);
}

// Diagnostics (paged_attention_timeline.cu): the stamps' buffer if DIFFTX_PAGED_TIMELINE asks
// for this call to be recorded (else null), and, after a recorded launch, the report.
unsigned long long* timeline_for_call(std::size_t blocks, cudaStream_t stream);
void report_timeline(unsigned long long* timeline, dim3 grid, const char* variant,
                     cudaStream_t stream);

// The variant that stages each tile of K/V in shared memory with asynchronous copies
// (paged_attention_staged.cu); same grid and parameters as the register variant.
void launch_staged(const PagedParams& p, int head_dim, int rows, bool diff, dim3 grid,
                   cudaStream_t stream);
// Blocks of the staged kernel for this shape that one multiprocessor holds at once (its two tiles
// of shared memory bound it: one for DIFF V1 at d = 128, whose tiles take 128 KiB).
int staged_resident_blocks(int head_dim, int rows, bool diff);

}  // namespace difftx::cuda::paged
