// The one-row decode GEMV for long inputs (K >= 2,048), split over K inside each block: kernel
// and launcher (see gemv_device.cuh; launch_gemv in gemv.cu picks it). Every block takes a
// contiguous range of units (a weight row; SwiGLU's gate and up rows of one column; a RoPE pair
// of the QKV projection), the ranges balanced to within one unit, so that every multiprocessor
// reads the same number of bytes. All 256 threads of a block work on each batch of kR rows:
// thread t owns input chunks t, t + 256, ... (8 elements each), holds them in registers for the
// whole call (normalized once when the call has a norm), loads the same chunks of each row of the
// batch, and the block sums the rows' partial dot products (a butterfly that leaves every warp
// with all kR sums in 9 shuffles, then the 8 warps' sums through shared memory, in a fixed order,
// so results are reproducible). The first batch is loaded before the PDL wait; each next batch is
// loaded before the block reduces the current one, so its loads are in flight meanwhile.
//
// Against the row-per-warp kernel (gemv.cu), at the 1.4B shape: that kernel's column groups are
// whole rows, dealt round-robin, so the QKV projection's 3,072 RoPE pairs over 2,112 warps leave
// a third of the warps idle for the second round, and a weight row of 5,504 elements is six
// dependent batches of one warp's loads; here a block's share is balanced to one unit and read in
// one to six batches of the whole block.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "gemv_device.cuh"
#include "pdl.cuh"

namespace difftx::cuda::gemv_detail {
namespace {

constexpr int kThreads = kGemvThreads;
constexpr int kWarps = kThreads / 32;

// Weight rows per unit: 2 for SwiGLU (gate, up) and the QKV projection (a RoPE pair), else 1.
template <GemvMode kMode>
constexpr int rows_per_unit() {
  return kMode == GemvMode::swiglu || kMode == GemvMode::qkv_rope ? 2 : 1;
}

// Units of a call: output columns (store, accumulate, SwiGLU) or column pairs (QKV).
__device__ __host__ inline int units_of(GemvMode mode, int total_columns) {
  return mode == GemvMode::qkv_rope ? total_columns / 2 : total_columns;
}

// Row r of unit u: its first element.
template <GemvMode kMode>
__device__ __forceinline__ const bf16* unit_row(const GemvArgs& a, int u, int r) {
  if constexpr (kMode == GemvMode::swiglu) {
    return a.w[r] + i64(u) * a.k;
  } else {
    return concat_row(a, kMode == GemvMode::qkv_rope ? mapped_column<kMode>(a, 2 * u + r) : u);
  }
}

// The batch of kR rows from unit ub on (units past `end` repeat the last one; their sums are
// not used): chunk t + 256 c of each row, zeros past the row's end.
template <GemvMode kMode, int kR, int kXC>
__device__ __forceinline__ void load_rows(const GemvArgs& a, int ub, int end, int chunks,
                                          uint4 (&wv)[kR][kXC]) {
  constexpr int kRU = rows_per_unit<kMode>();
#pragma unroll
  for (int q = 0; q < kR; ++q) {
    const bf16* row = unit_row<kMode>(a, min(ub + q / kRU, end - 1), q % kRU);
#pragma unroll
    for (int c = 0; c < kXC; ++c) {
      const int chunk = int(threadIdx.x) + c * kThreads;
      wv[q][c] = chunk < chunks ? load_weight16(row + chunk * 8) : make_uint4(0, 0, 0, 0);
    }
  }
}

// Sums each of kR values (a power of two, at most 32) over the warp. Returns this lane's sum:
// that of value lane >> (5 - log2 kR). Each halving step trades half the values with the lane
// `off` apart, so kR values take kR - 1 shuffles, then the last 5 - log2 kR steps one each.
template <int kR>
__device__ __forceinline__ float warp_sums(float (&v)[kR], int lane) {
  static_assert(kR >= 1 && kR <= 32 && (kR & (kR - 1)) == 0);
  int off = 16;
#pragma unroll
  for (int n = kR; n > 1; n >>= 1, off >>= 1) {
    const bool upper = (lane & off) != 0;
#pragma unroll
    for (int j = 0; j < n / 2; ++j) {
      const float send = upper ? v[j] : v[j + n / 2];
      const float keep = upper ? v[j + n / 2] : v[j];
      v[j] = keep + __shfl_xor_sync(0xffffffffu, send, off);
    }
  }
  float s = v[0];
#pragma unroll
  for (; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
  return s;
}

template <int kR>
constexpr int log2_of() {
  return kR <= 1 ? 0 : 1 + log2_of<kR / 2>();
}

// kR rows per batch (a power of two, a multiple of the unit's rows); kXC input chunks per
// thread (chunks of the row = K / 8, at most 256 * kXC).
template <GemvMode kMode, typename Out, bool kNorm, int kR, int kXC>
__device__ __forceinline__ void gemv_splitk_body(const GemvArgs& a) {
  constexpr int kRU = rows_per_unit<kMode>();
  constexpr int kU = kR / kRU;  // units per batch
  static_assert(kU >= 1 && kU * kRU == kR);
  __shared__ float rstd[kGemvMaxRows];
  __shared__ float partial[2][kWarps][kR];  // per batch parity: each warp's row sums
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int chunks = a.k / 8;
  const int units = units_of(kMode, total_columns(a));
  const int begin = int(i64(blockIdx.x) * units / gridDim.x);
  const int end = int(i64(blockIdx.x + 1) * units / gridDim.x);
  // The weights and the norm's gain do not depend on the kernels before this one (launch_gemv's
  // contract): with PDL they are loaded while those still run (the gain up to three chunks per
  // thread; at four it would spill).
  constexpr bool kEarlyGain = kNorm && kXC <= 3;
  uint4 wv[kR][kXC];
  float gain[kNorm ? kXC : 1][8];
  if constexpr (kEarlyGain) {
#pragma unroll
    for (int c = 0; c < kXC; ++c) {
      const int chunk = int(threadIdx.x) + c * kThreads;
      if (chunk < chunks) load_gain8(a, chunk * 8, gain[c]);
    }
  }
  if (a.preload) load_rows<kMode, kR, kXC>(a, begin, end, chunks, wv);
  pdl_wait();
  pdl_launch_dependents();
  if (!a.preload) load_rows<kMode, kR, kXC>(a, begin, end, chunks, wv);
  // QKV: the rotations of the block's first pairs (up to 224), computed by warps 1-7 while warp 0
  // computes the norm's rstd, so that a batch's epilogue (on the block's critical path) applies
  // them rather than evaluating them (f64 exp and range reduction, sincosf).
  constexpr int kTable = kMode == GemvMode::qkv_rope ? kThreads - 32 : 1;
  __shared__ float2 rope_cs[kTable];
  if constexpr (kMode == GemvMode::qkv_rope) {
    const GemvRopeKv& e = a.rope;
    const int t = int(threadIdx.x) - 32, pair = begin + t, half = e.head_dim / 2;
    if (e.table && t >= 0 && pair < end && pair < (e.q_heads + e.k_heads) * half) {
      float c, s;
      rope_angle(pair % half, e.head_dim, e.positions[0], e.log_theta, c, s);
      rope_cs[t] = make_float2(c, s);
    }
  }
  if constexpr (kNorm) norm_prologue(a, rstd);
  uint4 xv[kXC];
#pragma unroll
  for (int c = 0; c < kXC; ++c) {
    const int chunk = int(threadIdx.x) + c * kThreads;
    xv[c] = make_uint4(0, 0, 0, 0);
    if (chunk < chunks) {
      xv[c] = __ldg(reinterpret_cast<const uint4*>(a.x) + chunk);
      if constexpr (kNorm) {
        if constexpr (!kEarlyGain) load_gain8(a, chunk * 8, gain[c]);
        xv[c] = normalize8(xv[c], rstd[0], gain[c]);
      }
    }
  }
  Out* out = static_cast<Out*>(a.out);
  int parity = 0;
  for (int ub = begin; ub < end; ub += kU, parity ^= 1) {
    // thread i < kU finishes unit ub + i; the residual it adds to, read early (accumulate)
    const int mine = ub + int(threadIdx.x);
    Out old{};
    if constexpr (kMode == GemvMode::accumulate) {
      if (int(threadIdx.x) < kU && mine < end) old = out[mine];
    }
    float acc[kR];
#pragma unroll
    for (int q = 0; q < kR; ++q) {
      acc[q] = 0.f;
#pragma unroll
      for (int c = 0; c < kXC; ++c) acc[q] += dot8(wv[q][c], xv[c]);
    }
    if (ub + kU < end) load_rows<kMode, kR, kXC>(a, ub + kU, end, chunks, wv);
    const float s = warp_sums<kR>(acc, lane);
    constexpr int kShift = 5 - log2_of<kR>();
    if ((lane & ((1 << kShift) - 1)) == 0) partial[parity][warp][lane >> kShift] = s;
    __syncthreads();
    if (int(threadIdx.x) < kU && mine < end) {
      float v[kRU];
#pragma unroll
      for (int r = 0; r < kRU; ++r) {
        const int q = int(threadIdx.x) * kRU + r;
        float sum = 0.f;
#pragma unroll
        for (int w = 0; w < kWarps; ++w) sum += partial[parity][w][q];
        v[r] = sum;
      }
      if constexpr (kMode == GemvMode::qkv_rope) {
        const int t = mine - begin;
        qkv_rope_store(a, 0, 2 * mine, v[0], v[kRU - 1],
                       a.rope.table && t < kTable ? &rope_cs[t] : nullptr);
      } else if constexpr (kMode == GemvMode::swiglu) {
        const float g = v[0];
        out[mine] = convert_to<Out>(g / (1.f + expf(-g)) * v[kRU - 1]);
      } else if constexpr (kMode == GemvMode::accumulate) {
        out[mine] = convert_to<Out>(convert_to<float>(old) + v[0]);
      } else {
        out[mine] = convert_to<Out>(v[0]);
      }
    }
  }
}

template <GemvMode kMode, typename Out, bool kNorm, int kR, int kXC>
__global__ void __launch_bounds__(kThreads, 2) gemv_splitk_kernel(const GemvArgs a) {
  gemv_splitk_body<kMode, Out, kNorm, kR, kXC>(a);
}

// The QKV projection's kernel with its registers capped at 88, for measurement
// (DIFFTX_GEMV_QKV=cap88): two of its 256-thread blocks (45,056 registers) then leave room on a
// multiprocessor for one 256-thread paged-attention block of at most 80 registers (the 1.4B
// shape's DIFF V1 and softmax blocks with DIFFTX_PAGED_STAGED_THREADS=256), which then starts
// under PDL while the projection runs, and a third block of its own does not fit. Measured on an
// H200 and not made the default (bench/engine/results/2026-12-03-h200-c): the 1.4B DIFF V1 step
// 1.017 -> 0.978-0.982 ms at 512 tokens, but 1.296 -> 1.396-1.399 at 4K (the 256-thread blocks
// are slower over several tiles) and the baseline 0.993 -> 1.050-1.055 at 512.
template <GemvMode kMode, typename Out, bool kNorm, int kR, int kXC>
__global__ void __maxnreg__(88) gemv_splitk_capped_kernel(const GemvArgs a) {
  gemv_splitk_body<kMode, Out, kNorm, kR, kXC>(a);
}

// Whether DIFFTX_GEMV_QKV=cap88 asks for the capped QKV kernel (read once).
bool qkv_capped() {
  static const bool capped = [] {
    const char* env = std::getenv("DIFFTX_GEMV_QKV");
    return env && std::strcmp(env, "cap88") == 0;
  }();
  return capped;
}

// Rows per batch: 8 up to two input chunks per thread (8 or 16 loads in flight), 4 from three on
// (12 or 16). Measured on an H200 and not kept (bench/engine/results/2026-12-02-h200-d): 16 rows
// at one chunk (the 1.4B step 1.025 -> 1.361 ms; its kernels took 96-127 registers, so no block
// of the next kernel started beside two of them), the one-chunk kernels capped at 80 registers
// for that room (1.006 -> 1.101 ms, small spills), and Hopper's bulk L2 prefetch of the next one
// or two batches of rows, before or after the PDL wait (1.017 -> 1.073-1.093 ms).
template <int kXC>
constexpr int rows_for() {
  return kXC <= 2 ? 8 : 4;
}

template <GemvMode kMode, typename Out, bool kNorm, int kXC>
void launch_with(const GemvArgs& a, unsigned blocks, std::size_t smem, cudaStream_t stream) {
  auto kernel = gemv_splitk_kernel<kMode, Out, kNorm, rows_for<kXC>(), kXC>;
  if constexpr (kMode == GemvMode::qkv_rope && kXC == 1) {
    if (qkv_capped()) kernel = gemv_splitk_capped_kernel<kMode, Out, kNorm, rows_for<kXC>(), kXC>;
  }
  cudaError_t status = cudaSuccess;
  if (smem > 0) {
    status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  }
  if (status == cudaSuccess) {
    status = launch_pdl(kernel, dim3(blocks), dim3(kThreads), smem, stream, pdl_enabled("gemv"), a);
  }
  if (status != cudaSuccess) {
    throw_cuda_error("gemv", "cudaLaunchKernelEx(gemv_splitk_kernel)", status, __FILE__, __LINE__);
  }
}

template <GemvMode kMode, typename Out, bool kNorm>
void launch_chunks(const GemvArgs& a, unsigned blocks, std::size_t smem, cudaStream_t stream) {
  switch ((a.k / 8 + kThreads - 1) / kThreads) {
    case 1:
      launch_with<kMode, Out, kNorm, 1>(a, blocks, smem, stream);
      break;
    case 2:
      launch_with<kMode, Out, kNorm, 2>(a, blocks, smem, stream);
      break;
    case 3:
      launch_with<kMode, Out, kNorm, 3>(a, blocks, smem, stream);
      break;
    default:
      launch_with<kMode, Out, kNorm, 4>(a, blocks, smem, stream);
      break;
  }
}

// Weight bytes of a call.
i64 weight_bytes(const GemvArgs& a) {
  i64 rows = 0;
  for (int i = 0; i < a.count; ++i) rows += a.m[i];
  return rows * a.k * 2;
}

// The smallest call (MiB of weights) the split-K kernel takes: any by default,
// DIFFTX_GEMV_SPLITK_MIN_MB=1..1024 for measurement (4: the line below which one-row GEMVs run
// exclusive; on an H200 the 125M model's W_down, 3 MiB, made the batch-1 step 0.296 ms with the
// row-per-warp kernel and 0.276 with this one, bench/engine/results/2026-12-02-h200-d).
i64 min_bytes() {
  static const i64 bytes = i64(env_int_or("DIFFTX_GEMV_SPLITK_MIN_MB", 0, 1024, 0)) << 20;
  return bytes;
}

// On unless the environment sets DIFFTX_GEMV_SPLITK=0 (then the row-per-warp kernel takes every
// call, for measurement).
bool splitk_enabled() {
  static const bool enabled = env_int_or("DIFFTX_GEMV_SPLITK", 0, 1, 1) == 1;
  return enabled;
}

}  // namespace

bool gemv_splitk_takes(const GemvArgs& a) {
  if (!splitk_enabled() || a.n != 1 || a.k < 8 * kThreads || a.k > 8 * 4 * kThreads) return false;
  if (weight_bytes(a) < min_bytes()) return false;
  switch (a.mode) {
    case GemvMode::store:
      return true;
    case GemvMode::accumulate:
      return a.out_type == ScalarType::bf16 && !a.norm_w;
    case GemvMode::swiglu:
    case GemvMode::qkv_rope:
      return a.out_type == ScalarType::bf16;
  }
  return false;
}

void launch_gemv_splitk(const GemvArgs& a, int total, cudaStream_t stream) {
  const int units = units_of(a.mode, total);
  const unsigned blocks = unsigned(std::min<i64>(units, i64(sm_count()) * blocks_per_sm()));
  // Under 4 MiB the call runs exclusive, as the row-per-warp kernel's do: shared memory reserved
  // so that no block of another kernel fits beside it (DIFFTX_GEMV_SMEM_KB overrides it).
  const int forced = forced_reserve_bytes(a.mode);
  const std::size_t smem = forced >= 0                              ? std::size_t(forced)
                           : weight_bytes(a) < kExclusiveBelowBytes ? exclusive_smem()
                                                                    : 0;
  const bool norm = a.norm_w != nullptr;
  switch (a.mode) {
    case GemvMode::store:
      if (a.out_type == ScalarType::f32) {
        norm ? launch_chunks<GemvMode::store, float, true>(a, blocks, smem, stream)
             : launch_chunks<GemvMode::store, float, false>(a, blocks, smem, stream);
      } else {
        norm ? launch_chunks<GemvMode::store, bf16, true>(a, blocks, smem, stream)
             : launch_chunks<GemvMode::store, bf16, false>(a, blocks, smem, stream);
      }
      break;
    case GemvMode::accumulate:
      launch_chunks<GemvMode::accumulate, bf16, false>(a, blocks, smem, stream);
      break;
    case GemvMode::swiglu:
      norm ? launch_chunks<GemvMode::swiglu, bf16, true>(a, blocks, smem, stream)
           : launch_chunks<GemvMode::swiglu, bf16, false>(a, blocks, smem, stream);
      break;
    case GemvMode::qkv_rope:  // with the norm (gemv_supported)
      launch_chunks<GemvMode::qkv_rope, bf16, true>(a, blocks, smem, stream);
      break;
  }
}

}  // namespace difftx::cuda::gemv_detail
