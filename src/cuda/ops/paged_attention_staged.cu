// Paged decode attention, staged variant: each tile of K/V is copied into shared memory by
// asynchronous copies (cp.async), two tiles in flight, and the lanes read it from there.
//
// Why: at batch 1 a block has one or two tiles to read and the kernel's time is a chain of
// memory latencies, not bandwidth. Here
//   - the first tile's copies are issued before the kernel waits on the kernels before it
//     (PDL): the context lengths, the block tables and the K/V of every token but the newest
//     were written by earlier kernels or steps, which have completed by the time this block
//     starts (every kernel waits on its predecessor before it lets its dependents launch). The
//     newest token of each sequence (context_lens - 1) is the one the preceding QKV kernel
//     writes; its copies are issued after the wait;
//   - a whole tile (K and V) is in flight at once, whatever its size, without registers for it;
//   - the next tile's copies are issued before the current tile is used.
// Per tile, as the register variant: scores by lanes dotting 8 key elements with the query rows
// (held in registers) and reducing by shuffles; online softmax, one warp per row; lanes keep
// (R, 8) accumulators of their value channels and token slice. The lanes' accumulators are
// summed by shuffles within a warp, then over the warps in order, in the freed tile buffers.
#include <algorithm>
#include <cstdlib>

#include "difftx/cuda/common/async_copy.cuh"
#include "paged_attention_common.cuh"
#include "pdl.cuh"

namespace difftx::cuda::paged {
namespace {

template <int D, bool kDiff>
struct StagedShape {
  static constexpr int kDv = kDiff ? 2 * D : D;        // value channels of head j
  static constexpr int kSeg = kDiff ? 2 * D : D;       // key elements of head j per token
  static constexpr int kStage = kTile * (kSeg + kDv);  // bf16 elements of one tile: K rows, V rows
  static constexpr std::size_t kDynamicBytes = 2 * kStage * sizeof(bf16);
};

template <int kT, int D, int R, bool kDiff, bool kFinal>
__global__ void __launch_bounds__(kT) paged_decode_staged_kernel(const PagedParams p) {
  constexpr int kWarps = kT / 32;
  if (p.early_trigger) pdl_launch_dependents();
  using S = StagedShape<D, kDiff>;
  constexpr int kDv = S::kDv, kSeg = S::kSeg;
  constexpr int kKch = kSeg / 8;  // 16-byte chunks per key segment
  constexpr int kLpc = D / 8;     // lanes per d-sized component
  constexpr int kTppK = kT / kKch;
  constexpr int kPassK = kTile / kTppK;
  constexpr int kVch = kDv / 8;
  constexpr int kTppV = kT / kVch;
  constexpr int kPassV = kTile / kTppV;
  constexpr int kRowsPerComp = kDiff ? R / 2 : R;
  static_assert(kT % kKch == 0 && kTile % kTppK == 0 && kTile % kTppV == 0, "tiling");
  static_assert(kVch <= 32 && 32 % kVch == 0, "a warp holds whole token slices");
  static_assert(kWarps * R * kDv * sizeof(float) <= S::kDynamicBytes, "reduction scratch");

  extern __shared__ uint4 staged_smem[];  // two tiles: (kTile, kSeg) K, (kTile, kDv) V
  bf16* const tiles = reinterpret_cast<bf16*>(staged_smem);  // stage s at tiles + s * kStage
  __shared__ float q_s[R][D];
  __shared__ float s_s[R][kTile];
  __shared__ float red_s[R][kDv];
  __shared__ int slot_s[2][kTile];
  __shared__ float m_s[R], l_s[R], alpha_s[R];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const auto [split, gy, b] = block_coords(p);
  const int j = gy / p.row_groups, rg = gy % p.row_groups;
  const int rows_here = min(R, p.group_rows - rg * R);
  const int qc0 = j * p.group_rows + rg * R;  // first query component of the block
  const int heads = kDiff ? rows_here / 2 : rows_here;
  const int head0 = kDiff ? qc0 / 2 : qc0;

  // ---- before the wait: lengths and tables (written at the step's start), older tokens' K/V
  stamp(p, kStampStart);
  const int ctx = p.lens[b];
  const int per = split_tokens(ctx, p.num_splits);
  const int start = split * per;
  // Past the sequence's end: the whole block leaves together, before it loads anything else.
  if (ctx > 0 && start >= ctx) return;
  stamp(p, kStampLength);
  const BlockConstants<kDv, kDiff> consts = load_block_constants<kDv, kDiff>(p);
  if (ctx == 0) {  // nothing to attend
    pdl_wait();
    if (!p.early_trigger) pdl_launch_dependents();
    write_empty_output<kT, R, kDv, kDiff>(p, consts, red_s, b, head0, heads);
    return;
  }
  const int end = min(ctx, start + per);
  const int newest = ctx - 1;  // written by the kernel just before this one

  const bf16* k_base = p.k_pool + i64(kDiff ? 2 * j : j) * D;
  const bf16* v_base = p.v_pool + i64(j) * kDv;
  const std::int32_t* table = p.tables + i64(b) * p.max_blocks;

  // Slots of the tile at t0 into slot_s[s] (-1 past the range's end).
  auto load_slots = [&](int s, int t0) {
    if (tid < kTile) {
      const int t = t0 + tid;
      slot_s[s][tid] = t < end ? table[t / p.block_size] * p.block_size + t % p.block_size : -1;
    }
  };
  // Copies of one token's K chunk (c < kKch) or V chunk (c - kKch) into stage s; tokens past the
  // end are zero-filled (a zero V row times a zero probability stays zero).
  auto copy_chunk = [&](int s, int tt, int c) {
    const int slot = slot_s[s][tt];
    bf16* tile = tiles + s * S::kStage;
    if (c < kKch) {
      const bf16* src = slot >= 0 ? k_base + i64(slot) * p.k_width + c * 8 : k_base;
      cp_async_16(tile + tt * kSeg + c * 8, src, slot >= 0 ? 16 : 0);
    } else {
      c -= kKch;
      const bf16* src = slot >= 0 ? v_base + i64(slot) * p.v_width + c * 8 : v_base;
      cp_async_16(tile + kTile * kSeg + tt * kDv + c * 8, src, slot >= 0 ? 16 : 0);
    }
  };
  // The copies of the tile at t0 into stage s, without the newest token unless `newest_too`.
  auto issue_tile = [&](int s, int t0, bool newest_too) {
    for (int i = tid; i < kTile * (kKch + kVch); i += kT) {
      const int tt = i / (kKch + kVch), c = i % (kKch + kVch);
      if (!newest_too && t0 + tt == newest) continue;
      copy_chunk(s, tt, c);
    }
  };

  load_slots(0, start);
  __syncthreads();
  stamp(p, kStampSlots);
  issue_tile(0, start, false);
  cp_async_commit();
  stamp(p, kStampIssued);

  // ---- after the wait: the query and the newest token
  pdl_wait();
  if (!p.early_trigger) pdl_launch_dependents();
  stamp(p, kStampWaited);
  if (newest < start + kTile) {  // the newest token is in the first tile
    for (int c = tid; c < kKch + kVch; c += kT) copy_chunk(0, newest - start, c);
  }
  cp_async_commit();
  load_query<kT, R, D>(p, q_s, b, qc0, rows_here);
  if (tid < R) {
    m_s[tid] = -INFINITY;
    l_s[tid] = 0.f;
  }

  const int kc = tid % kKch, k_tok = tid / kKch;
  const int comp = kDiff ? kc / kLpc : 0;
  const int e0 = (kc % kLpc) * 8;
  const int vc = tid % kVch, v_tok = tid / kVch;

  float acc[R][8] = {};       // (rows, the lane's 8 value channels) over its token slice
  float qr[kRowsPerComp][8];  // this lane's 8 query elements of each row it dots

  int s = 0;
  for (int t0 = start; t0 < end; t0 += kTile, s ^= 1) {
    const int n_tile = min(kTile, end - t0);
    const int next = t0 + kTile;
    if (next < end) load_slots(s ^ 1, next);
    __syncthreads();  // next slots ready; stage s ^ 1 and s_s no longer read; q_s written
    if (t0 == start) {
#pragma unroll
      for (int rr = 0; rr < kRowsPerComp; ++rr) {
        const int r = kDiff ? 2 * rr + comp : rr;
#pragma unroll
        for (int e = 0; e < 8; ++e) qr[rr][e] = q_s[r][e0 + e];
      }
    }
    if (next < end) issue_tile(s ^ 1, next, true);
    cp_async_commit();
    cp_async_wait<1>();  // this thread's copies of tile t0 have landed
    __syncthreads();     // and everyone's
    if (t0 == start) stamp(p, kStampLanded);
    const bf16* k_tile = tiles + s * S::kStage;
    const bf16* v_tile = k_tile + kTile * kSeg;

    // A. scores
#pragma unroll
    for (int ps = 0; ps < kPassK; ++ps) {
      const int tt = ps * kTppK + k_tok;
      score_chunk<R, kDiff, kLpc>(
          *reinterpret_cast<const uint4*>(k_tile + tt * kSeg + kc * 8),
          [&](int rr, int e) { return qr[rr][e]; }, comp, kc % kLpc == 0, tt, n_tile, s_s);
    }
    __syncthreads();

    // B. online softmax per row
    softmax_tile<kT, R>(s_s, m_s, l_s, alpha_s);
    __syncthreads();

    // C. probabilities times V
    rescale<R>(acc, alpha_s);
#pragma unroll
    for (int ps = 0; ps < kPassV; ++ps) {
      const int tt = ps * kTppV + v_tok;
      accumulate_chunk<R>(*reinterpret_cast<const uint4*>(v_tile + tt * kDv + vc * 8), s_s, tt,
                          acc);
    }
  }
  cp_async_wait<0>();
  stamp(p, kStampTiles);

  // Sum the lanes' accumulators: the token slices of a warp by shuffles, then the warps in order
  // (a fixed order, so graph and eager runs agree bit for bit), in the tile buffers.
#pragma unroll
  for (int off = kVch; off < 32; off <<= 1) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[r][e] += __shfl_xor_sync(0xffffffffu, acc[r][e], off);
    }
  }
  float* scratch = reinterpret_cast<float*>(staged_smem);  // (warps, R, kDv)
  __syncthreads();                                         // every lane is done with the tiles
  if (lane < kVch) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int e = 0; e < 8; ++e) scratch[(warp * R + r) * kDv + vc * 8 + e] = acc[r][e];
    }
  }
  __syncthreads();
  for (int i = tid; i < R * kDv; i += kT) {
    float total = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) total += scratch[w * R * kDv + i];
    red_s[i / kDv][i % kDv] = total;
  }
  __syncthreads();
  stamp(p, kStampReduced);
  finish_block<kT, D, R, kDiff, kFinal, combine_groups<kT, kDv, R, kDiff>()>(
      p, consts, red_s, m_s, l_s, ctx, per, heads, head0);
}

// The kernel's dynamic shared memory limit raised to its two tiles, once per process.
template <int kT, int D, int R, bool kDiff, bool kFinal>
void allow_tiles() {
  static const cudaError_t attribute = cudaFuncSetAttribute(
      paged_decode_staged_kernel<kT, D, R, kDiff, kFinal>,
      cudaFuncAttributeMaxDynamicSharedMemorySize, int(StagedShape<D, kDiff>::kDynamicBytes));
  DIFFTX_CUDA_CHECK("paged_attention_decode (shared memory size)", attribute);
}

template <int kT, int D, int R, bool kDiff, bool kFinal>
void launch_kernel(const PagedParams& p, dim3 grid, cudaStream_t stream) {
  constexpr std::size_t bytes = StagedShape<D, kDiff>::kDynamicBytes;
  allow_tiles<kT, D, R, kDiff, kFinal>();
  DIFFTX_CUDA_CHECK("paged_attention_decode",
                    launch_pdl(paged_decode_staged_kernel<kT, D, R, kDiff, kFinal>, grid, dim3(kT),
                               bytes, stream, pdl_enabled("attention"), p));
}

// Whether DIFFTX_PAGED_STAGED_THREADS=256 asks for 256 threads per block (read once).
bool staged_threads_256() {
  static const bool forced = [] {
    const char* env = std::getenv("DIFFTX_PAGED_STAGED_THREADS");
    return env && std::atoi(env) == 256;
  }();
  return forced;
}

// kStagedThreads per block, but 256 for blocks of 8 query rows (at 512 threads, which caps a
// thread at 128 registers, their accumulators spill) or when asked for.
template <int D, int R, bool kDiff, bool kFinal>
void launch_threads(const PagedParams& p, dim3 grid, cudaStream_t stream) {
  static_assert(kStagedThreads == 512, "the launcher's two block sizes");
  if constexpr (R <= 4) {
    if (!staged_threads_256()) {
      launch_kernel<512, D, R, kDiff, kFinal>(p, grid, stream);
      return;
    }
  }
  launch_kernel<256, D, R, kDiff, kFinal>(p, grid, stream);
}

// Blocks of the kernel launch_threads picks that fit on one multiprocessor at once (the split
// kernel's: the one-split kernel differs only in its end). Read from the runtime once per shape.
template <int D, int R, bool kDiff>
int resident_blocks() {
  static const int blocks = [] {
    const bool wide = R <= 4 && !staged_threads_256();
    const int threads = wide ? 512 : 256;
    const auto kernel = wide ? paged_decode_staged_kernel<512, D, R, kDiff, false>
                             : paged_decode_staged_kernel<256, D, R, kDiff, false>;
    wide ? allow_tiles<512, D, R, kDiff, false>() : allow_tiles<256, D, R, kDiff, false>();
    int n = 0;
    DIFFTX_CUDA_CHECK("paged_attention_decode (occupancy)",
                      cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                          &n, kernel, threads, StagedShape<D, kDiff>::kDynamicBytes));
    return std::max(1, n);
  }();
  return blocks;
}

template <int D, bool kDiff>
int resident_blocks_of(int rows) {
  switch (rows) {
    case 1:
      if constexpr (!kDiff) return resident_blocks<D, 1, kDiff>();
      return resident_blocks<D, 2, kDiff>();
    case 2:
      return resident_blocks<D, 2, kDiff>();
    case 4:
      return resident_blocks<D, 4, kDiff>();
    default:
      return resident_blocks<D, 8, kDiff>();
  }
}

template <int D, int R, bool kDiff>
void launch_rows(const PagedParams& p, dim3 grid, cudaStream_t stream) {
  if (p.num_splits == 1) {
    launch_threads<D, R, kDiff, true>(p, grid, stream);
  } else {
    launch_threads<D, R, kDiff, false>(p, grid, stream);
  }
}

template <int D, bool kDiff>
void dispatch_rows(const PagedParams& p, int rows, dim3 grid, cudaStream_t stream) {
  switch (rows) {
    case 1:
      if constexpr (!kDiff) launch_rows<D, 1, kDiff>(p, grid, stream);
      break;
    case 2:
      launch_rows<D, 2, kDiff>(p, grid, stream);
      break;
    case 4:
      launch_rows<D, 4, kDiff>(p, grid, stream);
      break;
    default:
      launch_rows<D, 8, kDiff>(p, grid, stream);
      break;
  }
}

}  // namespace

int staged_resident_blocks(int head_dim, int rows, bool diff) {
  if (head_dim == 64)
    return diff ? resident_blocks_of<64, true>(rows) : resident_blocks_of<64, false>(rows);
  return diff ? resident_blocks_of<128, true>(rows) : resident_blocks_of<128, false>(rows);
}

void launch_staged(const PagedParams& p, int head_dim, int rows, bool diff, dim3 grid,
                   cudaStream_t stream) {
  if (head_dim == 64) {
    diff ? dispatch_rows<64, true>(p, rows, grid, stream)
         : dispatch_rows<64, false>(p, rows, grid, stream);
  } else {
    diff ? dispatch_rows<128, true>(p, rows, grid, stream)
         : dispatch_rows<128, false>(p, rows, grid, stream);
  }
}

}  // namespace difftx::cuda::paged
