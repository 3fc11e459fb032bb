// Paged decode attention: the register variant of the kernel, the choice of variant, and the
// launchers (see paged_attention.cuh; the grid and a block's end: paged_attention_common.cuh).
//
// Register variant: tokens go in tiles of 64:
//   A. each K row segment of head j (d or 2d elements) is read once with 16-byte loads, a few
//      lanes per token; every lane dots its 8 elements with the query rows that use them and
//      the lanes of one d-sized component reduce by shuffles -> scores (R, 64) in shared memory;
//   B. one warp per row: online softmax (base 2; q was pre-scaled by scale * log2 e);
//   C. each V row segment is read once, 16 bytes per lane; lanes keep (R, 8) f32 accumulators
//      for their channels and tokens, rescaled by the row's correction factor each tile.
// At the end the lanes' accumulators are summed in shared memory, in a fixed order.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <tuple>

#include "device_util.cuh"
#include "paged_attention.cuh"
#include "paged_attention_common.cuh"
#include "pdl.cuh"

namespace difftx::cuda {
namespace {

using namespace paged;

template <int D, int R, bool kDiff, bool kFinal>
__global__ void __launch_bounds__(kRegisterThreads) paged_decode_kernel(const PagedParams p) {
  if (p.early_trigger) pdl_launch_dependents();
  constexpr int kDv = kDiff ? 2 * D : D;          // value channels of head j
  constexpr int kSeg = kDiff ? 2 * D : D;         // key elements of head j per token
  constexpr int kKch = kSeg / 8;                  // 16-byte chunks per key segment
  constexpr int kLpc = D / 8;                     // lanes per d-sized component
  constexpr int kTppK = kRegisterThreads / kKch;  // tokens per key pass
  constexpr int kPassK = kTile / kTppK;
  constexpr int kVch = kDv / 8;
  constexpr int kTppV = kRegisterThreads / kVch;
  constexpr int kPassV = kTile / kTppV;
  constexpr int kBatchK = kPassK < 8 ? kPassK : 8;  // 16-byte loads in flight per lane
  constexpr int kBatchV = kPassV < 8 ? kPassV : 8;
  static_assert(kRegisterThreads % kKch == 0 && kTile % kTppK == 0 && kTile % kTppV == 0, "tiling");

  __shared__ float q_s[R][D];
  __shared__ float s_s[R][kTile];
  __shared__ float red_s[R][kDv];
  __shared__ int slot_s[kTile];
  __shared__ float m_s[R], l_s[R], alpha_s[R];

  stamp(p, kStampStart);
  const BlockConstants<kDv, kDiff> consts = load_block_constants<kDv, kDiff>(p);
  stamp(p, kStampIssued);
  pdl_wait();
  if (!p.early_trigger) pdl_launch_dependents();
  stamp(p, kStampWaited);
  const int tid = threadIdx.x;
  const auto [split, gy, b] = block_coords(p);
  const int j = gy / p.row_groups, rg = gy % p.row_groups;
  const int rows_here = min(R, p.group_rows - rg * R);
  const int qc0 = j * p.group_rows + rg * R;  // first query component of the block
  const int ctx = p.lens[b];

  const int heads = kDiff ? rows_here / 2 : rows_here;  // output heads of the block
  const int head0 = kDiff ? qc0 / 2 : qc0;
  if (ctx == 0) {  // nothing to attend
    write_empty_output<kRegisterThreads, R, kDv, kDiff>(p, consts, red_s, b, head0, heads);
    return;
  }
  const int per = split_tokens(ctx, p.num_splits);
  const int start = split * per;
  if (start >= ctx) return;  // the whole block leaves together
  const int end = min(ctx, start + per);

  load_query<kRegisterThreads, R, D>(p, q_s, b, qc0, rows_here);
  for (int i = tid; i < R * kDv; i += kRegisterThreads) red_s[i / kDv][i % kDv] = 0.f;
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

  float acc[R][8] = {};  // (rows, the lane's 8 value channels) over its token slice

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
        score_chunk<R, kDiff, kLpc>(
            kraw[ps], [&](int rr, int e) { return q_s[kDiff ? 2 * rr + comp : rr][e0 + e]; }, comp,
            kc % kLpc == 0, (ps0 + ps) * kTppK + k_tok, n_tile, s_s);
      }
    }
    __syncthreads();

    // B. online softmax per row
    softmax_tile<kRegisterThreads, R>(s_s, m_s, l_s, alpha_s);
    __syncthreads();

    // C. probabilities times V
    rescale<R>(acc, alpha_s);
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
        accumulate_chunk<R>(vraw[ps], s_s, (ps0 + ps) * kTppV + v_tok, acc);
      }
    }
    __syncthreads();  // slot_s and s_s are rewritten by the next tile
    if (t0 == start) stamp(p, kStampLanded);
  }
  stamp(p, kStampTiles);

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

  stamp(p, kStampReduced);
  finish_block<kRegisterThreads, D, R, kDiff, kFinal>(p, consts, red_s, m_s, l_s, ctx, per, heads,
                                                      head0);
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
void launch_typed(const PagedParams& p, dim3 grid, cudaStream_t stream) {
  const bool pdl = pdl_enabled("attention");
  if (p.num_splits == 1) {
    DIFFTX_CUDA_CHECK("paged_attention_decode",
                      launch_pdl(paged_decode_kernel<D, R, kDiff, true>, grid,
                                 dim3(kRegisterThreads), 0, stream, pdl, p));
    return;
  }
  DIFFTX_CUDA_CHECK("paged_attention_decode",
                    launch_pdl(paged_decode_kernel<D, R, kDiff, false>, grid,
                               dim3(kRegisterThreads), 0, stream, pdl, p));
}

template <int D, bool kDiff>
void dispatch_rows(const PagedParams& p, int rows, dim3 grid, cudaStream_t stream) {
  switch (rows) {
    case 1:
      if constexpr (!kDiff) launch_typed<D, 1, kDiff>(p, grid, stream);
      break;
    case 2:
      launch_typed<D, 2, kDiff>(p, grid, stream);
      break;
    case 4:
      launch_typed<D, 4, kDiff>(p, grid, stream);
      break;
    default:
      launch_typed<D, 8, kDiff>(p, grid, stream);
      break;
  }
}

}  // namespace

// Whether the attention lets the next kernel launch as soon as all its blocks have started,
// before they wait on the kernel before (DIFFTX_ATTN_EARLY_TRIGGER=1, for measurement; default:
// after the wait, like every decode kernel). The next kernel still waits for the attention to
// complete; only its start, and the loads it issues before its own wait, move earlier.
static bool early_trigger() {
  static const bool on = [] {
    const char* env = std::getenv("DIFFTX_ATTN_EARLY_TRIGGER");
    return env && std::strcmp(env, "1") == 0;
  }();
  return on;
}

// Whether a split's arrival is one acquire-release atomic of thread 0 after the block's barrier
// (the default) or every thread's membar.gl before a relaxed one (DIFFTX_ATTN_ARRIVAL=fence, the
// code before the seventeenth session, for measurement). Measured on an H200
// (bench/engine/results/2026-12-03-h200-e): the release arrival 0.1-1.6% faster per batch-1
// step in all 16 rows of call 1 (125M and 1.4B, DIFF V1 and softmax, 512 to 4K tokens); in call
// 3, 1.4B DIFF V1 at 512 tokens 1.016 -> 0.997 ms, 125M 0.276 -> 0.271.
static bool release_arrival() {
  static const bool on = [] {
    const char* env = std::getenv("DIFFTX_ATTN_ARRIVAL");
    return !(env && std::strcmp(env, "fence") == 0);
  }();
  return on;
}

// The grid's order (paged_attention_common.cuh): split-major unless DIFFTX_PAGED_SPLIT_MAJOR=0.
static bool split_major() {
  static const bool on = [] {
    const char* env = std::getenv("DIFFTX_PAGED_SPLIT_MAJOR");
    return !(env && std::strcmp(env, "0") == 0);
  }();
  return on;
}

PagedAttentionLoads paged_attention_loads(const PagedAttentionGeometry& g, int num_sms) {
  enum class Forced { no, staged, registers };
  static const Forced forced = [] {
    const char* env = std::getenv("DIFFTX_PAGED_LOADS");
    if (env && std::strcmp(env, "registers") == 0) return Forced::registers;
    if (env && std::strcmp(env, "staged") == 0) return Forced::staged;
    return Forced::no;
  }();
  if (forced != Forced::no) {
    return forced == Forced::staged ? PagedAttentionLoads::staged : PagedAttentionLoads::registers;
  }
  return i64(g.batch) * groups_per_sequence(g) * 4 <= num_sms ? PagedAttentionLoads::staged
                                                              : PagedAttentionLoads::registers;
}

// Whether the staged variant's splits are held to one wave of blocks (below); on unless
// DIFFTX_PAGED_ONE_WAVE=0 (for measurement).
static bool one_wave() {
  static const bool on = [] {
    const char* env = std::getenv("DIFFTX_PAGED_ONE_WAVE");
    return !(env && std::strcmp(env, "0") == 0);
  }();
  return on;
}

int paged_attention_splits(const PagedAttentionGeometry& g, int num_sms) {
  const int blocks = std::max(1, g.batch * groups_per_sequence(g));
  const i64 max_context = i64(g.max_blocks) * g.block_size;
  const int tiles = static_cast<int>(std::max<i64>(1, (max_context + kTile - 1) / kTile));
  const int most = std::min(tiles, kMaxSplits);
  const int want = std::clamp((2 * num_sms + blocks - 1) / blocks, 1, most);
  if (!one_wave() || paged_attention_loads(g, num_sms) != PagedAttentionLoads::staged) return want;
  // The staged variant's two tiles of shared memory can leave room for few blocks on a
  // multiprocessor (DIFF V1 at d = 128: one). When a call's blocks would need well over one wave
  // (more than 1.5 times what fits), the last ones would start only as the first ones end, each
  // with its own start-up latency, so the splits are capped where every block fits in one wave.
  // Measured on an H200 (bench/engine/results/2026-12-02-h200-e, call 3), 1.4B DIFF V1 steps:
  // 33 splits (two waves of 2-tile blocks) -> 16, batch 1 with 4K tokens 1.351 -> 1.288 ms;
  // batch 4 (9 -> 4) 2.315 -> 2.137 (512 tokens), 3.303 -> 3.164 (4K); batch 1 with 512 tokens
  // ~1% slower (0.999 -> 1.011). Capping a slight excess lost (call 1: the 1.4B baseline's 17
  // splits -> 16, blocks of 5 tiles at 4,160 tokens against 4 and a 1-tile tail, 1.296 -> 1.330).
  const i64 room = i64(num_sms) * paged::staged_resident_blocks(g.head_dim, rows_per_block(g),
                                                                g.kind == PagedAttentionKind::diff);
  if (2 * i64(want) * blocks <= 3 * room) return want;
  return std::clamp(int(room / blocks), 1, want);
}

// Diagnostics: with DIFFTX_PAGED_PLAN=1, the variant and splits of each batch size, kind and
// shape the first time it is launched, on stderr.
static void report_plan(const PagedAttentionGeometry& g, bool staged, int splits) {
  static const bool on = [] {
    const char* env = std::getenv("DIFFTX_PAGED_PLAN");
    return env && std::strcmp(env, "1") == 0;
  }();
  if (!on) return;
  static std::mutex mutex;
  static std::set<std::tuple<int, int, int, int>> seen;
  const std::lock_guard<std::mutex> lock(mutex);
  if (!seen.insert({g.batch, int(g.kind), g.head_dim, g.q_heads}).second) return;
  std::fprintf(stderr, "paged attention plan: %s d=%d q_heads=%d batch %d: %s, %d splits\n",
               g.kind == PagedAttentionKind::diff ? "diff" : "softmax", g.head_dim, g.q_heads,
               g.batch, staged ? "staged" : "registers", splits);
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
  p.groups = groups;
  p.split_major = split_major();
  const dim3 grid = p.split_major
                        ? dim3(unsigned(groups), unsigned(g.batch), unsigned(p.num_splits))
                        : dim3(unsigned(p.num_splits), unsigned(groups), unsigned(g.batch));
  p.timeline = paged::timeline_for_call(std::size_t(grid.x) * grid.y * grid.z, stream);
  p.early_trigger = early_trigger();
  p.release_arrival = release_arrival();
  const bool staged = paged_attention_loads(g, num_sms) == PagedAttentionLoads::staged;
  report_plan(g, staged, p.num_splits);
  if (staged) {
    paged::launch_staged(p, g.head_dim, rows, diff, grid, stream);
  } else if (g.head_dim == 64) {
    diff ? dispatch_rows<64, true>(p, rows, grid, stream)
         : dispatch_rows<64, false>(p, rows, grid, stream);
  } else {
    diff ? dispatch_rows<128, true>(p, rows, grid, stream)
         : dispatch_rows<128, false>(p, rows, grid, stream);
  }
  if (p.timeline) paged::report_timeline(p.timeline, grid, staged ? "staged" : "registers", stream);
}

}  // namespace difftx::cuda
