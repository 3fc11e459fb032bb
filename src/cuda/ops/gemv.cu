// Decode-step matrix-vector products: the row-per-warp kernel, and the launcher of both kernels
// (see gemv.cuh; one-row calls with K >= 2,048 go to the split-K kernel of gemv_splitk.cu unless
// DIFFTX_GEMV_SPLITK=0). A warp owns kCols output columns (weight rows) at a time: its lanes
// stream those rows in 16-byte chunks (several in flight), dot each chunk with the n input rows
// (read through L1 once per chunk, shared by the kCols rows) and reduce by shuffles; lanes then
// apply the epilogue to their (column, row) outputs. Columns per warp: 4, 2 or 1, the most that
// keeps the grid (2 blocks per multiprocessor) full and balanced. SwiGLU pairs each gate row with
// its up row. Column groups of all weights go to warps round-robin over the blocks. With a norm,
// every block first computes the rows' rstd (one warp per row, from L2) and normalizes each input
// chunk as it reads it; block 0 writes xn. Each warp loads its first batch of weights before it
// waits on the previous kernel (PDL), and the residual it accumulates into before its products.
// At one row, where a weight row is one batch, a warp loads its next column group's weights
// before it computes the current one.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "device_util.cuh"
#include "gemv.cuh"
#include "gemv_device.cuh"
#include "pdl.cuh"

namespace difftx::cuda {
namespace {

using namespace gemv_detail;

constexpr int kThreads = kGemvThreads;
constexpr int kWarps = kThreads / 32;

// Weight rows a warp streams per column group (SwiGLU: a gate and an up row per column).
template <GemvMode kMode, int kCols>
constexpr int weight_rows() {
  return kMode == GemvMode::swiglu ? 2 * kCols : kCols;
}

// 16-byte loads in flight per lane: 8 (4 for one column per warp; 8 there measured no faster on
// an H200: the 1.4B shape's W_o / W_down GEMV 11.5 vs 10.9 us under Nsight Compute): batches of
// kUnroll chunks of each weight row.
template <GemvMode kMode, int kCols>
constexpr int unroll_of() {
  return weight_rows<kMode, kCols>() >= 4 ? 2 : 4;
}

// The kRows weight rows of the column group at raw column j0 (kCols columns; SwiGLU: a gate and
// an up row per column); a past-the-end column repeats the last one.
template <GemvMode kMode, int kCols, int kRows>
__device__ __forceinline__ void group_rows(const GemvArgs& a, int j0, int total,
                                           const bf16* (&w)[kRows]) {
#pragma unroll
  for (int c = 0; c < kCols; ++c) {
    const int j = mapped_column<kMode>(a, min(j0 + c, total - 1));
    if constexpr (kMode == GemvMode::swiglu) {
      w[2 * c] = a.w[0] + i64(j) * a.k;
      w[2 * c + 1] = a.w[1] + i64(j) * a.k;
    } else {
      w[c] = concat_row(a, j);
    }
  }
}

// One batch of weight chunks: kUnroll chunks of 256 elements apart from k0, of each of the rows.
template <int kUnroll, int kRows>
__device__ __forceinline__ void load_batch(const bf16* const (&w)[kRows], int k0, int k,
                                           uint4 (&wv)[kUnroll][kRows]) {
#pragma unroll
  for (int u = 0; u < kUnroll; ++u) {
    const int kk = k0 + u * 256;
#pragma unroll
    for (int q = 0; q < kRows; ++q)
      wv[u][q] = kk < k ? load_weight16(w[q] + kk) : make_uint4(0, 0, 0, 0);
  }
}

// Column groups go to warps round-robin over the blocks first (group g to block g % gridDim.x),
// so that with a grid of a few blocks per multiprocessor every multiprocessor gets the same
// number of groups to within one per warp.
__device__ __forceinline__ int first_group() {
  return (threadIdx.x >> 5) * gridDim.x + blockIdx.x;
}

// (At one row, ptxas left to itself capped some variants at 64 registers and spilled; two blocks
// per multiprocessor lets it use up to 128.)
// kAhead (look-ahead, one row only): every batch's loads after the first are issued before the
// batch before it is used (a group's last batch issues the next group's first), so a lane has a
// batch in flight while it computes; the second buffer costs registers (see ahead_for).
// kDepth (one row, no look-ahead): batches of kDepth times unroll_of's chunks per weight row, so
// a lane has that many more loads in flight and a long row takes fewer round trips (depth_for).
template <int NR, GemvMode kMode, typename Out, int kCols, bool kNorm, bool kAhead, int kDepth>
__global__ void __launch_bounds__(kThreads, NR == 1 ? 2 : 1) gemv_kernel(const GemvArgs a) {
  static_assert(!kAhead || NR == 1);
  static_assert(kDepth == 1 || (NR == 1 && !kAhead));
  constexpr int kRows = weight_rows<kMode, kCols>();
  constexpr int kUnroll = unroll_of<kMode, kCols>() * kDepth;
  __shared__ float rstd[kGemvMaxRows];
  const int lane = threadIdx.x & 31;
  const int total = total_columns(a);
  const int stride = gridDim.x * kWarps * kCols;
  int j0 = first_group() * kCols;
  // The weights do not depend on the kernels before this one: with PDL the block may start while
  // they still run, so (unless turned off) it loads its first batch of weights before it waits.
  const bf16* w[kRows];
  uint4 wv[kUnroll][kRows];
  if (j0 < total) {
    group_rows<kMode, kCols>(a, j0, total, w);
    if (a.preload) load_batch<kUnroll>(w, lane * 8, a.k, wv);
  }
  pdl_wait();
  pdl_launch_dependents();
  if (!a.preload && j0 < total) load_batch<kUnroll>(w, lane * 8, a.k, wv);
  if constexpr (kNorm) norm_prologue(a, rstd);
  Out* out = static_cast<Out*>(a.out);
  const int my_c = lane / NR, my_r = lane % NR;  // the (column, row) output of this lane
  bool loaded = true;  // wv holds the batch the loop reaches next (its group's rows are in w)
  for (; j0 < total; j0 += stride) {
    // the residual this lane adds to, read early (accumulate)
    Out old{};
    if constexpr (kMode == GemvMode::accumulate) {
      if (my_c < kCols && my_r < a.n && j0 + my_c < total) old = out[my_r * a.ldo + j0 + my_c];
    }
    if (!loaded) group_rows<kMode, kCols>(a, j0, total, w);
    const bool more = j0 + stride < total;  // the warp has another column group after this one
    const bf16* next_w[kRows];
    if (kAhead && more) group_rows<kMode, kCols>(a, j0 + stride, total, next_w);
    float acc[kRows][NR];
#pragma unroll
    for (int q = 0; q < kRows; ++q) {
#pragma unroll
      for (int r = 0; r < NR; ++r) acc[q][r] = 0.f;
    }
    for (int k0 = lane * 8; k0 < a.k; k0 += 256 * kUnroll) {
      uint4 nv[kUnroll][kRows];  // kAhead: the batch after this one, in flight meanwhile
      if (kAhead) {
        if (k0 + 256 * kUnroll < a.k) {
          load_batch<kUnroll>(w, k0 + 256 * kUnroll, a.k, nv);
        } else if (more) {
          load_batch<kUnroll>(next_w, lane * 8, a.k, nv);
        }
      } else {
        if (!loaded) load_batch<kUnroll>(w, k0, a.k, wv);
        loaded = false;
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int kk = k0 + u * 256;
        if (kk >= a.k) break;
        float g[8];
        if constexpr (kNorm) load_gain8(a, kk, g);
        // every row of the template's NR is read (rows past n repeat the last one) so that the
        // loads are issued together; only rows below n are stored
        uint4 xv[NR];
#pragma unroll
        for (int r = 0; r < NR; ++r) {
          xv[r] = __ldg(reinterpret_cast<const uint4*>(a.x + min(r, a.n - 1) * a.ldx + kk));
        }
#pragma unroll
        for (int r = 0; r < NR; ++r) {
          if constexpr (kNorm) xv[r] = normalize8(xv[r], rstd[min(r, a.n - 1)], g);
#pragma unroll
          for (int q = 0; q < kRows; ++q) acc[q][r] += dot8(wv[u][q], xv[r]);
        }
      }
      if (kAhead) {
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
          for (int q = 0; q < kRows; ++q) wv[u][q] = nv[u][q];
        }
      }
    }
    if (kAhead && more) {
#pragma unroll
      for (int q = 0; q < kRows; ++q) w[q] = next_w[q];
    }
    loaded = kAhead;  // the next group's first batch is in wv and its rows in w
#pragma unroll
    for (int q = 0; q < kRows; ++q) {
#pragma unroll
      for (int r = 0; r < NR; ++r) acc[q][r] = warp_sum(acc[q][r]);
    }
    if constexpr (kMode == GemvMode::qkv_rope) {  // kCols == 2: lane r finishes row r's pair
#pragma unroll
      for (int r = 0; r < NR; ++r) {
        if (lane == r && r < a.n) qkv_rope_store(a, r, j0, acc[0][r], acc[1][r]);
      }
    } else {
      // Lane c * NR + r writes column j0 + c of input row r.
#pragma unroll
      for (int c = 0; c < kCols; ++c) {
#pragma unroll
        for (int r = 0; r < NR; ++r) {
          if (lane != c * NR + r || r >= a.n || j0 + c >= total) continue;
          Out* o = out + r * a.ldo + j0 + c;
          if constexpr (kMode == GemvMode::swiglu) {
            const float g = acc[2 * c][r];
            *o = convert_to<Out>(g / (1.f + expf(-g)) * acc[2 * c + 1][r]);
          } else if constexpr (kMode == GemvMode::accumulate) {
            *o = convert_to<Out>(convert_to<float>(old) + acc[c][r]);
          } else {
            *o = convert_to<Out>(acc[c][r]);
          }
        }
      }
    }
  }
}

// Whether a one-row call takes the look-ahead loop (DIFFTX_GEMV_AHEAD: 0 never; 2 in every mode
// but the QKV projection; 1, the default, there only when a weight row is one batch, so that what
// is loaded ahead is the next column group). Chosen by measurement on an H200 (batch-1 steps,
// context 512; bench/engine/results/2026-12-01-h200-c): ahead everywhere but the QKV projection
// made the 125M model's step 7-8% faster (0.328 -> 0.302 ms; its rows of 768 weights are one
// batch in the 1- and 2-column kernels) and the 1.4B shape's 7% slower (1.306 -> 1.400 ms; rows of
// 2,048 and 5,461: two or more batches), although traced in place its GEMVs ran slightly faster
// with it (not understood); the default rule measured 0.304 and 1.306 ms. In the QKV kernel it
// changed little at 125M (0.306 ms) and took that kernel from 96 to 124 registers per thread.
template <GemvMode kMode, int kCols>
bool ahead_for(const GemvArgs& a) {
  static const int mode = env_int_or("DIFFTX_GEMV_AHEAD", 0, 2, 1);
  if (kMode == GemvMode::qkv_rope || mode == 0) return false;
  return mode == 2 || a.k <= 256 * unroll_of<kMode, kCols>();
}

// How many times unroll_of's loads a one-row call without look-ahead keeps in flight per lane
// (DIFFTX_GEMV_DEPTH=1, 2 or 4, for measurement; default 1), at most 16 loads of 16 bytes (64
// registers) per lane: a warp then reads a long row (the 1.4B shape's 2,048 and 5,504 weights) in
// fewer round trips.
template <GemvMode kMode, int kCols>
int depth_for() {
  static const int depth = env_int_or("DIFFTX_GEMV_DEPTH", 1, 4, 1);
  constexpr int loads = weight_rows<kMode, kCols>() * unroll_of<kMode, kCols>();
  int d = depth == 3 ? 2 : depth;
  while (d > 1 && loads * d > 16) d /= 2;
  return d;
}

// Dynamic shared memory a GEMV block reserves and does not use, so that no block of the kernel
// before or after starts beside the GEMV's (an *exclusive* GEMV). The rule: at one row, when the
// call reads under 4 MiB of weights. Measured on an H200 (batch-1 steps, context 512;
// bench/engine/results/2026-12-02-h200-b): exclusive GEMVs made the 125M model's step 5% faster
// (0.303 -> 0.287 ms; its projections read 1.2-3.4 MB, the head 77 MB), most of it from the QKV
// projection, and the 1.4B shape's 9% slower (1.306 -> 1.425; 8-45 MB per projection): there the
// blocks of the next kernel that start early and load their first data while a long GEMV runs
// are worth more than they cost, at 125M less. DIFFTX_GEMV_SMEM_KB overrides it for measurement
// (forced_reserve_bytes, gemv_device.cuh).
template <int NR, GemvMode kMode>
std::size_t reserved_smem(const GemvArgs& a, int total) {
  if (const int forced = forced_reserve_bytes(kMode); forced >= 0) return std::size_t(forced);
  const i64 rows = kMode == GemvMode::swiglu ? 2 * i64(total) : i64(total);
  return NR == 1 && rows * a.k * 2 < kExclusiveBelowBytes ? exclusive_smem() : 0;
}

// The kernel of a call: look-ahead or not, and its depth.
template <int NR, GemvMode kMode, typename Out, int kCols, bool kNorm>
auto kernel_for(const GemvArgs& a) -> void (*)(const GemvArgs) {
  if constexpr (NR == 1) {
    if constexpr (kMode != GemvMode::qkv_rope) {
      if (ahead_for<kMode, kCols>(a)) return gemv_kernel<NR, kMode, Out, kCols, kNorm, true, 1>;
    }
    // (only the depths depth_for can pick are instantiated)
    constexpr int loads = weight_rows<kMode, kCols>() * unroll_of<kMode, kCols>();
    const int depth = depth_for<kMode, kCols>();
    if constexpr (loads * 4 <= 16) {
      if (depth == 4) return gemv_kernel<NR, kMode, Out, kCols, kNorm, false, 4>;
    }
    if constexpr (loads * 2 <= 16) {
      if (depth == 2) return gemv_kernel<NR, kMode, Out, kCols, kNorm, false, 2>;
    }
  }
  return gemv_kernel<NR, kMode, Out, kCols, kNorm, false, 1>;
}

template <int NR, GemvMode kMode, typename Out, int kCols, bool kNorm>
cudaError_t launch_kernel(const GemvArgs& a, int total, unsigned blocks, cudaStream_t stream) {
  const auto kernel = kernel_for<NR, kMode, Out, kCols, kNorm>(a);
  const std::size_t smem = reserved_smem<NR, kMode>(a, total);
  if (smem > 0) {
    const cudaError_t status =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (status != cudaSuccess) return status;
  }
  return launch_pdl(kernel, dim3(blocks), dim3(kThreads), smem, stream, pdl_enabled("gemv"), a);
}

template <int NR, GemvMode kMode, int kCols, bool kNorm>
void launch_cols(const GemvArgs& a, int total, cudaStream_t stream) {
  const i64 groups = (total + kCols - 1) / kCols;
  const unsigned blocks =
      unsigned(std::min<i64>((groups + kWarps - 1) / kWarps, i64(sm_count()) * blocks_per_sm()));
  cudaError_t status;
  if constexpr (kMode == GemvMode::qkv_rope) {  // bf16 out only
    status = launch_kernel<NR, kMode, bf16, kCols, kNorm>(a, total, blocks, stream);
  } else if (a.out_type == ScalarType::f32) {
    status = launch_kernel<NR, kMode, float, kCols, kNorm>(a, total, blocks, stream);
  } else {
    status = launch_kernel<NR, kMode, bf16, kCols, kNorm>(a, total, blocks, stream);
  }
  if (status != cudaSuccess) {
    throw_cuda_error("gemv", "cudaLaunchKernelEx(gemv_kernel)", status, __FILE__, __LINE__);
  }
}

// Columns per warp forced by the environment (DIFFTX_GEMV_COLS=1, 2 or 4, for profiling), or 0.
int forced_columns() {
  static const int cols = [] {
    const char* env = std::getenv("DIFFTX_GEMV_COLS");
    if (env &&
        (std::strcmp(env, "1") == 0 || std::strcmp(env, "2") == 0 || std::strcmp(env, "4") == 0)) {
      return std::atoi(env);
    }
    return 0;
  }();
  return cols;
}

// Columns per warp: the most (4, 2 or 1) that still gives every warp of the capped grid at least
// two column groups (one from 4 rows up, where more columns per warp save more L1 reads of the
// input): the grid is then full and balanced to within one group per warp. Before this, any
// width of 4 x 8 x SMs columns or more took 4 per warp, which left the 1.4B shape's 5,461-column
// SwiGLU 171 blocks: 39 multiprocessors with two, 93 with one.
// SwiGLU at 1 and 8 rows takes at most 2: with 4 its kernel spills (at one row with the second
// weight buffer of the look-ahead loop).
template <int NR, GemvMode kMode>
constexpr bool four_columns_fit() {
  return !(kMode == GemvMode::swiglu && (NR == 1 || NR == 8));
}

template <int NR, GemvMode kMode>
int columns_per_warp(int total) {
  const int forced = forced_columns();
  if (forced) return forced == 4 && !four_columns_fit<NR, kMode>() ? 2 : forced;
  const i64 warps = i64(sm_count()) * blocks_per_sm() * kWarps;
  const i64 want = NR >= 4 ? warps : 2 * warps;
  for (const int c : {4, 2}) {
    if (c == 4 && !four_columns_fit<NR, kMode>()) continue;
    if ((total + c - 1) / c >= want) return c;
  }
  return 1;
}

template <int NR, GemvMode kMode, bool kNorm>
void launch_rows(const GemvArgs& a, int total, cudaStream_t stream) {
  if constexpr (kMode == GemvMode::qkv_rope) {  // a warp per rotation pair
    launch_cols<NR, kMode, 2, kNorm>(a, total, stream);
  } else {
    switch (columns_per_warp<NR, kMode>(total)) {
      case 4:
        if constexpr (four_columns_fit<NR, kMode>())
          launch_cols<NR, kMode, 4, kNorm>(a, total, stream);
        break;
      case 2:
        launch_cols<NR, kMode, 2, kNorm>(a, total, stream);
        break;
      default:
        launch_cols<NR, kMode, 1, kNorm>(a, total, stream);
        break;
    }
  }
}

template <GemvMode kMode, bool kNorm>
void launch_mode(const GemvArgs& a, int total, cudaStream_t stream) {
  if (a.n == 1) {
    launch_rows<1, kMode, kNorm>(a, total, stream);
  } else if (a.n == 2) {
    launch_rows<2, kMode, kNorm>(a, total, stream);
  } else if (a.n <= 4) {
    launch_rows<4, kMode, kNorm>(a, total, stream);
  } else {
    launch_rows<8, kMode, kNorm>(a, total, stream);
  }
}

}  // namespace

// Rows the kernel takes at most (DIFFTX_GEMV_MAX_ROWS=1..8 for profiling, default
// kGemvDefaultRows): larger steps go to cuBLASLt and the unfused ops.
static int gemv_max_rows() {
  static const int rows = env_int_or("DIFFTX_GEMV_MAX_ROWS", 1, kGemvMaxRows, kGemvDefaultRows);
  return rows;
}

bool gemv_supported(const GemvArgs& a) {
  if (a.n < 1 || a.n > gemv_max_rows() || a.k < 8 || a.k % 8 != 0 || a.ldx % 8 != 0) return false;
  if (a.count < 1 || a.count > kGemvMaxWeights || !aligned16(a.x)) return false;
  if (a.mode == GemvMode::swiglu && (a.count != 2 || a.m[0] != a.m[1])) return false;
  if (a.norm_w) {
    if (a.mode == GemvMode::accumulate || !a.xn || !a.rstd || a.ldx != a.k) return false;
    if (!aligned16(a.norm_w) || !aligned16(a.xn)) return false;
  }
  if (a.mode == GemvMode::qkv_rope) {
    const GemvRopeKv& e = a.rope;
    if (!a.norm_w || a.count != 3 || a.out_type != ScalarType::bf16) return false;
    if (!e.positions || !e.slots || !e.k_pool || !e.v_pool) return false;
    if (e.head_dim < 2 || e.head_dim % 2 != 0 || e.q_heads < 0 || e.k_heads < 1) return false;
    if (a.m[0] != e.q_heads * e.head_dim || a.m[1] != e.k_heads * e.head_dim) return false;
    if (a.m[2] % 2 != 0 || a.ldo != i64(a.m[0]) + a.m[1] + a.m[2]) return false;
  }
  for (int i = 0; i < a.count; ++i) {
    if (!aligned16(a.w[i]) || a.m[i] < 1) return false;
  }
  return a.out_type == ScalarType::bf16 || a.out_type == ScalarType::f32;
}

// On unless DIFFTX_GEMV_PRELOAD=0 (for profiling): each warp loads its first weights before it
// waits on the previous kernel. (An earlier variant asked L2 for the warps' whole first rows
// instead, Hopper's bulk prefetch: on an H200 that made the 1.4B decode step 12% slower, 1.744 vs
// 1.562 ms, the next kernel's rows evicting the running kernel's.)
static bool preload_enabled() {
  static const bool enabled = [] {
    const char* env = std::getenv("DIFFTX_GEMV_PRELOAD");
    return !(env && std::strcmp(env, "0") == 0);
  }();
  return enabled;
}

void launch_gemv(const GemvArgs& args, cudaStream_t stream) {
  if (!gemv_supported(args)) throw_op_error("gemv", "operands the kernel does not take");
  GemvArgs a = args;
  a.preload = preload_enabled();
  static const bool rope_table = env_int_or("DIFFTX_GEMV_ROPE_TABLE", 0, 1, 1) == 1;
  a.rope.table = rope_table;
  int total = a.m[0];
  if (a.mode != GemvMode::swiglu) {
    for (int i = 1; i < a.count; ++i) total += a.m[i];
  }
  if (gemv_splitk_takes(a)) {
    launch_gemv_splitk(a, total, stream);
    return;
  }
  const bool norm = a.norm_w != nullptr;
  switch (a.mode) {
    case GemvMode::store:
      norm ? launch_mode<GemvMode::store, true>(a, total, stream)
           : launch_mode<GemvMode::store, false>(a, total, stream);
      break;
    case GemvMode::accumulate:
      launch_mode<GemvMode::accumulate, false>(a, total, stream);
      break;
    case GemvMode::swiglu:
      norm ? launch_mode<GemvMode::swiglu, true>(a, total, stream)
           : launch_mode<GemvMode::swiglu, false>(a, total, stream);
      break;
    case GemvMode::qkv_rope:  // with the norm (gemv_supported)
      launch_mode<GemvMode::qkv_rope, true>(a, total, stream);
      break;
  }
}

}  // namespace difftx::cuda
