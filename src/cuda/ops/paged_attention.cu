// Paged decode attention: kernels and launchers (see paged_attention.cuh).
//
// Grid (splits, v_heads * row_groups, B), 128 threads. A block owns one sequence b, one
// key/value head j, R query rows of the components that read j (its row group) and one token
// range of the sequence. Tokens go in tiles of 64:
//   A. each K row segment of head j (d or 2d elements) is read once with 16-byte loads, a few
//      lanes per token; every lane dots its 8 elements with the query rows that use them and
//      the lanes of one d-sized component reduce by shuffles -> scores (R, 64) in shared memory;
//   B. one warp per row: online softmax (base 2; q was pre-scaled by scale * log2 e);
//   C. each V row segment is read once, 16 bytes per lane; lanes keep (R, 8) f32 accumulators
//      for their channels and tokens, rescaled by the row's correction factor each tile.
// At the end the lanes' accumulators are summed in shared memory, in a fixed order. With one split
// the block writes the output (DIFF V1: (O1/l1) - lambda (O2/l2) per head); otherwise it writes
// partial (max, sum, acc) rows, counts its arrival on the (sequence, block row)'s counter, and
// the last block to arrive combines the splits of its rows (in split order, so the result does
// not depend on which block that is) and resets the counter. The output may be normalized per
// head (DIFF V1's head RMSNorm, with rmsnorm_forward's arithmetic) before it is written.
#include <algorithm>

#include "device_util.cuh"
#include "paged_attention.cuh"
#include "pdl.cuh"

namespace difftx::cuda {
namespace {

constexpr int kThreads = 128;
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
  int out_heads;
  float scale_log2;
};

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

// The block's output heads from shared memory: head hh's dv values at vals[row(hh) * kDv], row(hh)
// = 2 hh for DIFF V1 (the first map's row) and hh otherwise; rounded to bf16, then, with a head
// norm, out = bf16(scale * x * rstd * gain) with rstd over the rounded values (rmsnorm_forward).
template <int kDv, bool kDiff>
__device__ void write_output(const PagedParams& p, const float* vals, int b, int head0, int heads) {
  constexpr int kRowStep = kDiff ? 2 : 1;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  bf16* out = p.out + (i64(b) * p.out_heads + head0) * kDv;
  if (!p.norm_w) {
    for (int i = tid; i < heads * kDv; i += kThreads) {
      out[i] = __float2bfloat16(vals[(i / kDv) * kRowStep * kDv + i % kDv]);
    }
    return;
  }
  for (int hh = warp; hh < heads; hh += kThreads / 32) {
    const float* v = vals + hh * kRowStep * kDv;
    float ss = 0.f;
    for (int c = lane; c < kDv; c += 32) {
      const float x = __bfloat162float(__float2bfloat16(v[c]));
      ss += x * x;
    }
    ss = warp_sum(ss);
    const float r = 1.f / sqrtf(ss / float(kDv) + p.norm_eps);
    if (lane == 0) p.head_rstd[i64(b) * p.out_heads + head0 + hh] = r;
    for (int c = lane; c < kDv; c += 32) {
      const float x = __bfloat162float(__float2bfloat16(v[c]));
      const float g = p.norm_w_f32 ? static_cast<const float*>(p.norm_w)[c]
                                   : __bfloat162float(static_cast<const bf16*>(p.norm_w)[c]);
      out[i64(hh) * kDv + c] = __float2bfloat16(p.norm_scale * x * r * g);
    }
  }
}

// The last block of a (sequence, block row) `row` combines the `used` splits' partial rows (read
// from L2: other blocks wrote them) into vals, laid out as write_output reads them. Every load of
// a round is issued before the first is used: the (max, sum) pairs of all splits at once, then
// the partial outputs 8 splits at a time; the sums run in split order.
template <int kDv, int R, bool kDiff>
__device__ void combine_splits(const PagedParams& p, i64 row, int used, int heads, float* vals) {
  __shared__ float ml_s[kMaxSplits * R * 2];  // (split, row, {max, sum})
  __shared__ float scale_s[kMaxSplits][R];    // exp2(m_s - M) / L per split and row
  const i64 base = row * p.num_splits;
  for (int i = threadIdx.x; i < used * R * 2; i += kThreads) {
    ml_s[i] = __ldcg(&p.ws_ml[base * R * 2 + i]);
  }
  __syncthreads();
  if (threadIdx.x < R) {
    const int r = threadIdx.x;
    float mx = -INFINITY;
    for (int s = 0; s < used; ++s) mx = fmaxf(mx, ml_s[(s * R + r) * 2]);
    float total = 0.f;
    for (int s = 0; s < used; ++s)
      total += ml_s[(s * R + r) * 2 + 1] * exp2f(ml_s[(s * R + r) * 2] - mx);
    for (int s = 0; s < used; ++s) scale_s[s][r] = exp2f(ml_s[(s * R + r) * 2] - mx) / total;
  }
  __syncthreads();
  const float lambda = kDiff ? *p.lambda : 0.f;
  constexpr int kBatch = 8;
  for (int i = threadIdx.x; i < heads * kDv; i += kThreads) {
    const int hh = i / kDv, c = i % kDv;
    const int r0 = kDiff ? 2 * hh : hh;
    float o0 = 0.f, o1 = 0.f;
    for (int s0 = 0; s0 < used; s0 += kBatch) {
      float a0[kBatch], a1[kBatch];
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
        const float* a = p.ws_acc + (base + s0 + u) * R * kDv;
        a0[u] = s0 + u < used ? __ldcg(&a[r0 * kDv + c]) : 0.f;
        a1[u] = kDiff && s0 + u < used ? __ldcg(&a[(r0 + 1) * kDv + c]) : 0.f;
      }
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
        if (s0 + u >= used) break;
        o0 = fmaf(scale_s[s0 + u][r0], a0[u], o0);
        if (kDiff) o1 = fmaf(scale_s[s0 + u][r0 + 1], a1[u], o1);
      }
    }
    vals[r0 * kDv + c] = kDiff ? o0 - lambda * o1 : o0;
  }
}

template <int D, int R, bool kDiff, bool kFinal>
__global__ void __launch_bounds__(kThreads) paged_decode_kernel(const PagedParams p) {
  constexpr int kDv = kDiff ? 2 * D : D;   // value channels of head j
  constexpr int kSeg = kDiff ? 2 * D : D;  // key elements of head j per token
  constexpr int kKch = kSeg / 8;           // 16-byte chunks per key segment
  constexpr int kLpc = D / 8;              // lanes per d-sized component
  constexpr int kTppK = kThreads / kKch;   // tokens per key pass
  constexpr int kPassK = kTile / kTppK;
  constexpr int kVch = kDv / 8;
  constexpr int kTppV = kThreads / kVch;
  constexpr int kPassV = kTile / kTppV;
  constexpr int kRowsPerComp = kDiff ? R / 2 : R;
  constexpr int kBatchK = kPassK < 8 ? kPassK : 8;  // 16-byte loads in flight per lane
  constexpr int kBatchV = kPassV < 8 ? kPassV : 8;
  static_assert(kThreads % kKch == 0 && kTile % kTppK == 0 && kTile % kTppV == 0, "tiling");

  __shared__ float q_s[R][D];
  __shared__ float s_s[R][kTile];
  __shared__ float red_s[R][kDv];
  __shared__ int slot_s[kTile];
  __shared__ float m_s[R], l_s[R], alpha_s[R];

  pdl_wait();
  pdl_launch_dependents();
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int split = blockIdx.x, gy = blockIdx.y, b = blockIdx.z;
  const int j = gy / p.row_groups, rg = gy % p.row_groups;
  const int rows_here = min(R, p.group_rows - rg * R);
  const int qc0 = j * p.group_rows + rg * R;  // first query component of the block
  const int ctx = p.lens[b];

  const int heads = kDiff ? rows_here / 2 : rows_here;  // output heads of the block
  const int head0 = kDiff ? qc0 / 2 : qc0;
  if (ctx == 0) {  // nothing to attend: zero output, written by the first split
    if (split == 0) {
      for (int i = tid; i < R * kDv; i += kThreads) red_s[i / kDv][i % kDv] = 0.f;
      __syncthreads();
      write_output<kDv, kDiff>(p, red_s[0], b, head0, heads);
    }
    return;
  }
  const int per = split_tokens(ctx, p.num_splits);
  const int start = split * per;
  if (start >= ctx) return;  // the whole block leaves together
  const int end = min(ctx, start + per);

  for (int i = tid; i < R * D; i += kThreads) {
    const int r = i / D, e = i % D;
    q_s[r][e] = r < rows_here ? __bfloat162float(p.q[i64(b) * p.q_stride + i64(qc0 + r) * D + e]) *
                                    p.scale_log2
                              : 0.f;
  }
  for (int i = tid; i < R * kDv; i += kThreads) red_s[i / kDv][i % kDv] = 0.f;
  if (tid < R) {
    m_s[tid] = -INFINITY;
    l_s[tid] = 0.f;
  }

  const bf16* k_base = p.k_pool + i64(kDiff ? 2 * j : j) * D;
  const bf16* v_base = p.v_pool + i64(j) * kDv;
  const std::int32_t* table = p.tables + i64(b) * p.max_blocks;
  const int kc = tid % kKch, k_tok = tid / kKch;
  const int comp = kDiff ? kc / kLpc : 0;
  const int e0 = (kc % kLpc) * 8;
  const int vc = tid % kVch, v_tok = tid / kVch;

  float acc[R][8];
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[r][e] = 0.f;
  }

  for (int t0 = start; t0 < end; t0 += kTile) {
    const int n_tile = min(kTile, end - t0);
    if (tid < kTile) {
      const int t = t0 + tid;
      slot_s[tid] = tid < n_tile ? table[t / p.block_size] * p.block_size + t % p.block_size : -1;
    }
    __syncthreads();  // slots ready; the previous tile's probabilities consumed

    // The first batch of V loads goes out with the K loads: they do not depend on the scores,
    // and a tile then waits on memory once instead of twice.
    uint4 vfirst[kBatchV];
#pragma unroll
    for (int ps = 0; ps < kBatchV; ++ps) {
      const int slot = slot_s[ps * kTppV + v_tok];
      vfirst[ps] = slot >= 0
                       ? __ldg(reinterpret_cast<const uint4*>(v_base + i64(slot) * p.v_width) + vc)
                       : make_uint4(0, 0, 0, 0);
    }

    // A. scores, loads issued in batches of up to 8 per lane
#pragma unroll
    for (int ps0 = 0; ps0 < kPassK; ps0 += kBatchK) {
      uint4 kraw[kBatchK];
#pragma unroll
      for (int ps = 0; ps < kBatchK; ++ps) {
        const int slot = slot_s[(ps0 + ps) * kTppK + k_tok];
        kraw[ps] = slot >= 0
                       ? __ldg(reinterpret_cast<const uint4*>(k_base + i64(slot) * p.k_width) + kc)
                       : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int ps = 0; ps < kBatchK; ++ps) {
        const int tt = (ps0 + ps) * kTppK + k_tok;
        float kf[8];
        unpack8(kraw[ps], kf);
        float part[kRowsPerComp];
#pragma unroll
        for (int rr = 0; rr < kRowsPerComp; ++rr) {
          const int r = kDiff ? 2 * rr + comp : rr;
          float s = 0.f;
#pragma unroll
          for (int e = 0; e < 8; ++e) s = fmaf(q_s[r][e0 + e], kf[e], s);
          part[rr] = s;
        }
#pragma unroll
        for (int off = kLpc / 2; off > 0; off >>= 1) {
#pragma unroll
          for (int rr = 0; rr < kRowsPerComp; ++rr) {
            part[rr] += __shfl_xor_sync(0xffffffffu, part[rr], off);
          }
        }
        if (kc % kLpc == 0) {
#pragma unroll
          for (int rr = 0; rr < kRowsPerComp; ++rr) {
            const int r = kDiff ? 2 * rr + comp : rr;
            s_s[r][tt] = tt < n_tile ? part[rr] : -INFINITY;
          }
        }
      }
    }
    __syncthreads();

    // B. online softmax per row
    for (int r = warp; r < R; r += kThreads / 32) {
      const float v0 = s_s[r][lane], v1 = s_s[r][lane + 32];
      const float m_old = m_s[r];
      const float m_new = fmaxf(m_old, warp_max(fmaxf(v0, v1)));
      const float p0 = exp2f(v0 - m_new), p1 = exp2f(v1 - m_new);
      s_s[r][lane] = p0;
      s_s[r][lane + 32] = p1;
      const float sum = warp_sum(p0 + p1);
      if (lane == 0) {
        const float alpha = exp2f(m_old - m_new);  // 0 on the first tile (m_old = -inf)
        l_s[r] = l_s[r] * alpha + sum;
        m_s[r] = m_new;
        alpha_s[r] = alpha;
      }
    }
    __syncthreads();

    // C. probabilities times V
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float a = alpha_s[r];
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[r][e] *= a;
    }
#pragma unroll
    for (int ps0 = 0; ps0 < kPassV; ps0 += kBatchV) {
      uint4 vraw[kBatchV];
#pragma unroll
      for (int ps = 0; ps < kBatchV; ++ps) {
        if (ps0 == 0) {
          vraw[ps] = vfirst[ps];
          continue;
        }
        const int slot = slot_s[(ps0 + ps) * kTppV + v_tok];
        vraw[ps] = slot >= 0
                       ? __ldg(reinterpret_cast<const uint4*>(v_base + i64(slot) * p.v_width) + vc)
                       : make_uint4(0, 0, 0, 0);
      }
#pragma unroll
      for (int ps = 0; ps < kBatchV; ++ps) {
        const int tt = (ps0 + ps) * kTppV + v_tok;
        float vf[8];
        unpack8(vraw[ps], vf);
#pragma unroll
        for (int r = 0; r < R; ++r) {
          const float w = s_s[r][tt];
#pragma unroll
          for (int e = 0; e < 8; ++e) acc[r][e] = fmaf(w, vf[e], acc[r][e]);
        }
      }
    }
    __syncthreads();  // slot_s and s_s are rewritten by the next tile
  }

  // Sum the lanes' accumulators over the token slices, slice by slice: a fixed order, so the
  // result does not depend on scheduling (graph and eager runs agree bit for bit).
  for (int slice = 0; slice < kTppV; ++slice) {
    if (v_tok == slice) {
#pragma unroll
      for (int r = 0; r < R; ++r) {
#pragma unroll
        for (int e = 0; e < 8; ++e) red_s[r][vc * 8 + e] += acc[r][e];
      }
    }
    __syncthreads();
  }

  const int used = (ctx + per - 1) / per;  // splits with tokens
  if (kFinal || used == 1) {               // the only block of its rows: the output directly
    const float lambda = kDiff ? *p.lambda : 0.f;
    for (int i = tid; i < heads * kDv; i += kThreads) {  // in place: row 2hh (hh) of head hh
      const int hh = i / kDv, c = i % kDv;
      if (kDiff) {
        red_s[2 * hh][c] =
            red_s[2 * hh][c] / l_s[2 * hh] - lambda * (red_s[2 * hh + 1][c] / l_s[2 * hh + 1]);
      } else {
        red_s[hh][c] = red_s[hh][c] / l_s[hh];
      }
    }
    __syncthreads();
    write_output<kDv, kDiff>(p, red_s[0], b, head0, heads);
  } else {
    const i64 base = (i64(b) * gridDim.y + gy) * p.num_splits + split;
    for (int i = tid; i < R * kDv; i += kThreads)
      p.ws_acc[base * R * kDv + i] = red_s[i / kDv][i % kDv];
    if (tid < R) {
      p.ws_ml[(base * R + tid) * 2] = m_s[tid];
      p.ws_ml[(base * R + tid) * 2 + 1] = l_s[tid];
    }
    // Arrive; the last of the `used` blocks with tokens combines.
    __shared__ bool last_s;
    __threadfence();
    __syncthreads();
    unsigned* counter = p.counters_end - 1 - (i64(b) * gridDim.y + gy);
    if (tid == 0) last_s = atomicAdd(counter, 1u) == unsigned(used - 1);
    __syncthreads();
    if (!last_s) return;
    __threadfence();
    if (tid == 0) *counter = 0u;  // ready for the next call
    combine_splits<kDv, R, kDiff>(p, i64(b) * gridDim.y + gy, used, heads, red_s[0]);
    __syncthreads();
    write_output<kDv, kDiff>(p, red_s[0], b, head0, heads);
  }
}

int rows_per_block(const PagedAttentionGeometry& g) {
  const int group = g.group_rows();
  int r = 1;
  while (r < group && r < kMaxRows) r *= 2;
  return r;
}

int groups_per_sequence(const PagedAttentionGeometry& g) {
  const int r = rows_per_block(g);
  return g.v_heads * ((g.group_rows() + r - 1) / r);
}

template <int D, int R, bool kDiff>
void launch_typed(const PagedParams& p, int groups, int batch, cudaStream_t stream) {
  const dim3 grid{unsigned(p.num_splits), unsigned(groups), unsigned(batch)};
  const bool pdl = pdl_enabled();
  if (p.num_splits == 1) {
    DIFFTX_CUDA_CHECK("paged_attention_decode",
                      launch_pdl(paged_decode_kernel<D, R, kDiff, true>, grid, dim3(kThreads), 0,
                                 stream, pdl, p));
    return;
  }
  DIFFTX_CUDA_CHECK("paged_attention_decode", launch_pdl(paged_decode_kernel<D, R, kDiff, false>,
                                                         grid, dim3(kThreads), 0, stream, pdl, p));
}

template <int D, bool kDiff>
void dispatch_rows(const PagedParams& p, int rows, int groups, int batch, cudaStream_t stream) {
  switch (rows) {
    case 1:
      if constexpr (!kDiff) launch_typed<D, 1, kDiff>(p, groups, batch, stream);
      break;
    case 2:
      launch_typed<D, 2, kDiff>(p, groups, batch, stream);
      break;
    case 4:
      launch_typed<D, 4, kDiff>(p, groups, batch, stream);
      break;
    default:
      launch_typed<D, 8, kDiff>(p, groups, batch, stream);
      break;
  }
}

}  // namespace

int paged_attention_splits(const PagedAttentionGeometry& g, int num_sms) {
  const int blocks = std::max(1, g.batch * groups_per_sequence(g));
  const i64 max_context = i64(g.max_blocks) * g.block_size;
  const int useful = static_cast<int>(std::max<i64>(1, (max_context + kTile - 1) / kTile));
  const int want = (2 * num_sms + blocks - 1) / blocks;
  return std::clamp(want, 1, std::min(useful, kMaxSplits));
}

std::size_t paged_attention_workspace_bytes(const PagedAttentionGeometry& g, int num_sms) {
  // Partial rows of the batch that needs most, then one arrival counter per (sequence, block
  // row) of the largest batch with splits, counted from the end: every batch size's partial rows
  // stay clear of every batch size's counters, so one zeroed workspace serves them all.
  const int r = rows_per_block(g);
  const int dv = g.v_head_dim;
  std::size_t most = 0, counters = 0;
  PagedAttentionGeometry h = g;
  for (int b = 1; b <= std::max(1, g.batch); ++b) {
    h.batch = b;
    const int splits = paged_attention_splits(h, num_sms);
    if (splits == 1) continue;
    const std::size_t rows = std::size_t(b) * groups_per_sequence(g) * splits * r;
    most = std::max(most, rows * (std::size_t(dv) + 2) * sizeof(float));
    counters = std::size_t(b) * groups_per_sequence(g) * sizeof(unsigned);
  }
  if (most == 0) return 0;
  return (most + 15) / 16 * 16 + (counters + 15) / 16 * 16;
}

void launch_paged_attention_decode(const PagedAttentionGeometry& g, const bf16* q,
                                   const bf16* k_pool, const bf16* v_pool,
                                   const std::int32_t* block_tables,
                                   const std::int32_t* context_lens, const float* lambda, bf16* out,
                                   const PagedHeadNorm* head_norm, void* workspace,
                                   std::size_t workspace_bytes, int num_sms, cudaStream_t stream) {
  if (g.batch == 0) return;
  const bool diff = g.kind == PagedAttentionKind::diff;
  if (g.head_dim != 64 && g.head_dim != 128) {
    throw_op_error("paged_attention_decode", "head_dim must be 64 or 128");
  }
  PagedParams p{};
  p.q = q;
  p.q_stride = g.q_row_stride;
  p.k_pool = k_pool;
  p.v_pool = v_pool;
  p.k_width = i64(g.k_heads) * g.head_dim;
  p.v_width = i64(g.v_heads) * g.v_head_dim;
  p.tables = block_tables;
  p.max_blocks = g.max_blocks;
  p.block_size = g.block_size;
  p.lens = context_lens;
  p.lambda = lambda;
  p.out = out;
  p.group_rows = g.group_rows();
  const int rows = rows_per_block(g);
  p.row_groups = (p.group_rows + rows - 1) / rows;
  p.num_splits = paged_attention_splits(g, num_sms);
  p.out_heads = g.out_heads();
  p.scale_log2 = static_cast<float>(g.scale * 1.4426950408889634);
  if (head_norm) {
    if (!diff || !head_norm->weight || !head_norm->rstd) {
      throw_op_error("paged_attention_decode", "a head norm needs DIFF V1, a gain and rstd");
    }
    p.norm_w = head_norm->weight;
    p.norm_w_f32 = head_norm->weight_f32;
    p.norm_eps = head_norm->eps;
    p.norm_scale = head_norm->scale;
    p.head_rstd = head_norm->rstd;
  }
  const int groups = g.v_heads * p.row_groups;
  if (p.num_splits > 1) {
    if (!workspace || workspace_bytes < paged_attention_workspace_bytes(g, num_sms) ||
        workspace_bytes % sizeof(unsigned) != 0) {
      throw_op_error("paged_attention_decode",
                     "workspace smaller than paged_attention_workspace_bytes()");
    }
    p.ws_acc = static_cast<float*>(workspace);
    p.ws_ml = p.ws_acc + std::size_t(g.batch) * groups * p.num_splits * rows * g.v_head_dim;
    p.counters_end = reinterpret_cast<unsigned*>(static_cast<char*>(workspace) + workspace_bytes);
  }
  if (g.head_dim == 64) {
    diff ? dispatch_rows<64, true>(p, rows, groups, g.batch, stream)
         : dispatch_rows<64, false>(p, rows, groups, g.batch, stream);
  } else {
    diff ? dispatch_rows<128, true>(p, rows, groups, g.batch, stream)
         : dispatch_rows<128, false>(p, rows, groups, g.batch, stream);
  }
}

}  // namespace difftx::cuda
