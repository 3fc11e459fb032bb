// Forward flash-attention kernel for Hopper (sm_90a): the algorithm of fwd_kernel.cuh with the
// two products on warpgroup MMAs (wgmma) over 128B-swizzled shared tiles, the tiles brought in by
// TMA through a kStages-deep mbarrier pipeline, and the two warpgroups in ping-pong.
//
// One block = 2 warpgroups (256 threads) per (head, batch, query tile):
//   DIFF V1: warpgroup m computes map m (S_m = Q_m K_m^T, its online softmax, O_m += P_m V) for
//   the tile's 64 query rows; both read the same V tile (one global load per K1/K2/V tile).
//   DIFF V2: the same pairing for the two query heads 2i, 2i+1 of a pair, which share one K and
//   one V tile (they are in the same GQA group); the epilogue writes both heads' outputs (kept
//   for the backward) and the combined out_i = a_2i - sigmoid(gate_i) a_2i+1.
//   softmax: warpgroup w computes query rows [64 w, 64 w + 64) of a 128-row tile.
// S (64 x kBlockN) and O (64 x dv) live in registers (wgmma accumulators); P feeds the P V product
// from registers (wgmma A operand).
// Pipeline: one thread (the first of warpgroup 1) issues the TMA copies of K/V tile it + kStages -
// 1 as soon as both warpgroups have released the stage of tile it - 1 (empty barrier, one arrival
// per warp); warpgroups wait only on the full barrier of the tile they need, so no block-wide
// barrier runs in the main loop. Ping-pong (as FlashAttention-3): a pair of named barriers makes
// the warpgroups take turns issuing their S = Q K^T products, so one warpgroup's softmax runs
// while the other's products occupy the tensor cores. The epilogue stages O1/l1, O2/l2 in shared
// memory and writes out = O1 - lambda O2 (and out2) coalesced.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "mma.cuh"
#include "params.cuh"
#include "tma.cuh"
#include "tma_map.h"
#include "wgmma.cuh"

namespace difftx::cuda::attn {

enum class FwdMode { softmax, diff_v1, diff_v2 };

template <int kD_, FwdMode kMode_, int kBlockN_, int kStages_>
struct FwdSm90Traits {
  static constexpr int kD = kD_;
  static constexpr FwdMode kMode = kMode_;
  static constexpr bool kV1 = kMode == FwdMode::diff_v1;
  static constexpr bool kV2 = kMode == FwdMode::diff_v2;
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kStages = kStages_;
  static constexpr int kMaps = kMode == FwdMode::softmax ? 1 : 2;  // warpgroup = map / head of pair
  static constexpr int kKTiles = kV1 ? 2 : 1;                      // K tiles per stage
  static constexpr int kDV = kV1 ? 2 * kD : kD;
  static constexpr int kThreads = 256;
  static constexpr int kBlockM = kMaps == 2 ? 64 : 128;  // query rows per block
  static constexpr int kQRows = kMaps == 2 ? 64 : 128;   // rows of each Q sub-tile (one per map)
  static constexpr int kQBytes = kMaps * kQRows * kD * 2;
  static constexpr int kKTileBytes = kBlockN * kD * 2;
  static constexpr int kKBytes = kKTiles * kKTileBytes;
  static constexpr int kVBytes = kBlockN * kDV * 2;
  static constexpr int kStageBytes = kKBytes + kVBytes;
  static constexpr int kMainBytes = kQBytes + kStages * kStageBytes;
  static constexpr int kOS = kDV + 8;  // fp32 staging row
  static constexpr int kEpiBytes = 128 * kOS * 4;
  static constexpr int kBarOffset = kMainBytes > kEpiBytes ? kMainBytes : kEpiBytes;
  static constexpr int kSmemBytes = kBarOffset + (2 * kStages + 1) * 8;
  static_assert(kD % 64 == 0 && kDV % 64 == 0 && kBlockN % 64 == 0,
                "sw128 tiles need 64-wide panels");
  static_assert(kSmemBytes <= 232448, "shared memory per block exceeds 227 KB");
};

template <class Tr>
__global__ void __launch_bounds__(Tr::kThreads, 1)
    attention_fwd_sm90_kernel(const __grid_constant__ FwdParams p,
                              const __grid_constant__ TileMaps maps) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int kD = Tr::kD, kDV = Tr::kDV, kMaps = Tr::kMaps, kBlockM = Tr::kBlockM;
  constexpr int kBlockN = Tr::kBlockN, kQRows = Tr::kQRows, kOS = Tr::kOS;
  constexpr int kThreads = Tr::kThreads;

  constexpr int kStages = Tr::kStages;

  // the 128B swizzle needs 1024-byte aligned tiles: dynamic shared memory starts aligned when the
  // kernel has no static shared memory (checked, not assumed)
  extern __shared__ __align__(1024) unsigned char smem[];
  if ((smem_addr(smem) & 1023u) != 0) __trap();
  unsigned char* sQ = smem;  // kMaps sw128 tiles [kQRows][kD]
  unsigned char* sKV =
      smem + Tr::kQBytes;  // kStages stages of { K tiles [kMaps][kBlockN][kD], V [kBlockN][kDV] }
  const std::uint32_t bar0 = smem_addr(smem + Tr::kBarOffset);
  auto full_bar = [&](int s) { return bar0 + 8u * s; };               // tile landed (TMA bytes)
  auto empty_bar = [&](int s) { return bar0 + 8u * (kStages + s); };  // stage released (8 warps)
  const std::uint32_t q_bar = bar0 + 8u * (2 * kStages);

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wg = warp >> 2, wq = warp & 3;  // warpgroup, warp inside it
  const int map = kMaps == 2 ? wg : 0;
  const int row_base = kMaps == 2 ? 0 : 64 * wg;  // first tile row of this warpgroup
  // grid (query tiles, heads, batch): blocks running together share one head's K/V in L2;
  // the longest tiles (most keys) are scheduled first
  const int head = blockIdx.y, b = blockIdx.z;
  const int m_block = p.num_m_blocks - 1 - static_cast<int>(blockIdx.x);
  const int m0 = m_block * kBlockM;
  const int T = p.q_len, S = p.kv_len;
  const int kv_group = head / p.n_rep;
  auto q_comp = [&](int m) { return kMaps == 2 ? 2 * head + m : head; };
  auto k_comp = [&](int m) { return Tr::kV1 ? 2 * kv_group + m : kv_group; };
  const int vh = kv_group;

  const int q_rows = min(kBlockM, T - m0);
  const int kv_end = min(S, p.q_offset + m0 + q_rows);
  const int n_blocks = (kv_end + kBlockN - 1) / kBlockN;

  // TMA: Q once; K/V tile n into `stage` (all boxes count their full size, out-of-range rows
  // arrive as zeros)
  auto load_q = [&]() {
    mbar_expect_tx(q_bar, Tr::kQBytes);
#pragma unroll
    for (int m = 0; m < kMaps; ++m) {
#pragma unroll
      for (int pn = 0; pn < kD / 64; ++pn) {
        tma_load_3d(smem_addr(sQ + m * kQRows * kD * 2 + pn * kQRows * 128), &maps.q,
                    q_comp(m) * kD + 64 * pn, m0, b, q_bar);
      }
    }
  };
  auto load_kv = [&](int n, int stage) {
    unsigned char* sK = sKV + stage * Tr::kStageBytes;
    unsigned char* sV = sK + Tr::kKBytes;
    const int s0 = n * kBlockN;
    mbar_expect_tx(full_bar(stage), Tr::kStageBytes);
#pragma unroll
    for (int m = 0; m < Tr::kKTiles; ++m) {
#pragma unroll
      for (int pn = 0; pn < kD / 64; ++pn) {
        tma_load_3d(smem_addr(sK + m * Tr::kKTileBytes + pn * kBlockN * 128), &maps.k,
                    k_comp(m) * kD + 64 * pn, s0, b, full_bar(stage));
      }
    }
#pragma unroll
    for (int pn = 0; pn < kDV / 64; ++pn) {
      tma_load_3d(smem_addr(sV + pn * kBlockN * 128), &maps.v, vh * kDV + 64 * pn, s0, b,
                  full_bar(stage));
    }
  };

  float o[kDV / 2];
#pragma unroll
  for (int i = 0; i < kDV / 2; ++i) o[i] = 0.f;
  float row_max[2] = {-INFINITY, -INFINITY};
  float row_sum[2] = {0.f, 0.f};
  const int g = lane >> 2, c2 = (lane & 3) * 2;
  const int r_lo = row_base + wq * 16 + g;  // tile row of d[4i + 0..1]; d[4i + 2..3] is r_lo + 8
  const int t_lo = m0 + r_lo;
  const float scale_log2 = p.scale_log2;
  const std::uint32_t q_addr = smem_addr(sQ + map * kQRows * kD * 2) + row_base * 128;

  float s[kBlockN / 2];               // scores -> probabilities of one tile (64 x kBlockN)
  std::uint32_t pa[kBlockN / 16][4];  // P as bf16 A fragments
  float alpha[2];                     // rescale factor of the accumulator after a tile's softmax

  // S = Q K^T of the tile in `stage` (both operands K-major); issued, not waited for
  auto issue_s = [&](int stage) {
    const std::uint32_t k_addr =
        smem_addr(sKV + stage * Tr::kStageBytes + (Tr::kV1 ? map : 0) * Tr::kKTileBytes);
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      const std::uint32_t koff = (kk & 3) << 5;  // 16 columns = 32 bytes inside a panel
      const std::uint64_t da = sw128_desc(q_addr + (kk >> 2) * kQRows * 128 + koff, 16, 1024);
      const std::uint64_t db = sw128_desc(k_addr + (kk >> 2) * kBlockN * 128 + koff, 16, 1024);
      wgmma_ss<0, 0>(s, da, db, kk > 0 ? 1 : 0);
    }
    wgmma_commit();
  };
  // O += P V of the tile in `stage` (V MN-major: rows = keys = the K dimension)
  auto issue_pv = [&](int stage) {
    const std::uint32_t v_addr = smem_addr(sKV + stage * Tr::kStageBytes + Tr::kKBytes);
#pragma unroll
    for (int kt = 0; kt < kBlockN / 16; ++kt) {
      wgmma_rs<1>(o, pa[kt], sw128_desc(v_addr + kt * 16 * 128, kBlockN * 128, 1024), 1);
    }
    wgmma_commit();
  };
  // masks tile n's scores, updates the running max / sum, turns s into probabilities and
  // returns the factor the accumulator must be rescaled by
  auto softmax_tile = [&](int n) {
    const int s0 = n * kBlockN;
    if (s0 + kBlockN > S || s0 + kBlockN - 1 > p.q_offset + m0 + row_base) {
#pragma unroll
      for (int i = 0; i < kBlockN / 8; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int key = s0 + i * 8 + c2 + (j & 1);
          const int t = t_lo + (j >> 1) * 8;
          if (key >= S || key > p.q_offset + t) s[4 * i + j] = -INFINITY;
        }
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int i = 0; i < kBlockN / 8; ++i)
        mx = fmaxf(mx, fmaxf(s[4 * i + 2 * r], s[4 * i + 2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(row_max[r], mx * scale_log2);
      const float m_use = m_new == -INFINITY ? 0.f : m_new;
      alpha[r] = fast_exp2(row_max[r] - m_use);
      row_max[r] = m_new;
      float sum = 0.f;
#pragma unroll
      for (int i = 0; i < kBlockN / 8; ++i) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const float pv = fast_exp2(fmaf(s[4 * i + 2 * r + j], scale_log2, -m_use));
          s[4 * i + 2 * r + j] = pv;
          sum += pv;
        }
      }
      row_sum[r] = row_sum[r] * alpha[r] + sum;
    }
  };
  auto rescale_o = [&]() {
#pragma unroll
    for (int i = 0; i < kDV / 8; ++i) {
      o[4 * i] *= alpha[0];
      o[4 * i + 1] *= alpha[0];
      o[4 * i + 2] *= alpha[1];
      o[4 * i + 3] *= alpha[1];
    }
  };
  auto pack_p = [&]() {
#pragma unroll
    for (int kt = 0; kt < kBlockN / 16; ++kt) {
      pa[kt][0] = pack_bf16(s[8 * kt + 0], s[8 * kt + 1]);
      pa[kt][1] = pack_bf16(s[8 * kt + 2], s[8 * kt + 3]);
      pa[kt][2] = pack_bf16(s[8 * kt + 4], s[8 * kt + 5]);
      pa[kt][3] = pack_bf16(s[8 * kt + 6], s[8 * kt + 7]);
    }
  };

  if (tid == 0) {
    for (int st = 0; st < kStages; ++st) {
      mbar_init(full_bar(st), 1);
      mbar_init(empty_bar(st), 8);
    }
    mbar_init(q_bar, 1);
    mbar_fence_init();
  }
  __syncthreads();
  // tile order: it = 0 is the last kv tile (the diagonal one), then backwards
  const bool producer = tid == 128;
  if (producer) {
    load_q();
    for (int it = 0; it < kStages && it < n_blocks; ++it) load_kv(n_blocks - 1 - it, it);
  }
  __syncwarp();
  constexpr int kTurn0 = 1;  // named barriers 1, 2: warpgroup 0's / 1's turn to issue S
  if (wg == 1) named_bar_arrive(kTurn0, 2 * 128);  // warpgroup 0 goes first
  mbar_wait(q_bar, 0);
  for (int it = 0, n = n_blocks - 1; n >= 0; ++it, --n) {
    const int stage = it % kStages;
    // refill the stage tile it - 1 used (both warpgroups released it: warpgroup 1, which issues,
    // runs behind warpgroup 0)
    if (producer && it >= 1 && it - 1 + kStages < n_blocks) {
      const int rs = (it - 1) % kStages;
      mbar_wait(empty_bar(rs), ((it - 1) / kStages) & 1);
      load_kv(n_blocks - 1 - (it - 1 + kStages), rs);
    }
    __syncwarp();
    mbar_wait(full_bar(stage), (it / kStages) & 1);
    named_bar_sync(kTurn0 + wg, 2 * 128);
    wgmma_fence();
    issue_s(stage);
    if (wg == 0 || n > 0) named_bar_arrive(kTurn0 + (1 - wg), 2 * 128);
    wgmma_wait<0>();
    softmax_tile(n);
    rescale_o();
    pack_p();
    wgmma_fence();
    issue_pv(stage);
    wgmma_wait<0>();
    __syncwarp();
    if (lane == 0) mbar_arrive(empty_bar(stage));
  }

  // ---- epilogue (as in fwd_kernel.cuh)
  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float sum = row_sum[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    inv[r] = sum > 0.f ? 1.f / sum : 0.f;
    const int t = t_lo + r * 8;
    if ((lane & 3) == 0 && t < T) {
      const float lse = sum > 0.f ? (row_max[r] + log2f(sum)) * 0.69314718055994531f : -INFINITY;
      p.lse[(static_cast<std::int64_t>(b) * p.q_comps + q_comp(map)) * T + t] = lse;
    }
  }
  __syncthreads();
  // staging: [kMaps][rows][kOS] fp32; DIFF: map m rows 0..63; softmax: rows 0..127
  float* sO = reinterpret_cast<float*>(smem) + map * 64 * kOS;
#pragma unroll
  for (int i = 0; i < kDV / 8; ++i) {
    const int col = i * 8 + c2;
    *reinterpret_cast<float2*>(&sO[r_lo * kOS + col]) =
        make_float2(o[4 * i] * inv[0], o[4 * i + 1] * inv[0]);
    *reinterpret_cast<float2*>(&sO[(r_lo + 8) * kOS + col]) =
        make_float2(o[4 * i + 2] * inv[1], o[4 * i + 3] * inv[1]);
  }
  __syncthreads();

  const float* sO0 = reinterpret_cast<const float*>(smem);
  const float lam = Tr::kV1 ? *p.lambda : 0.f;
  constexpr int kChunks = kDV / 8;
  for (int c = tid; c < kBlockM * kChunks; c += kThreads) {
    const int r = c / kChunks, cc = c % kChunks;
    const int t = m0 + r;
    if (t >= T) continue;
    const float4 x0 = *reinterpret_cast<const float4*>(&sO0[r * kOS + cc * 8]);
    const float4 x1 = *reinterpret_cast<const float4*>(&sO0[r * kOS + cc * 8 + 4]);
    const std::int64_t orow = (static_cast<std::int64_t>(b) * T + t) * p.heads + head;
    uint4 packed = pack_bf16x8(x0, x1);
    if constexpr (kMaps == 2) {
      const float* sO1 = sO0 + 64 * kOS;
      const float4 y0 = *reinterpret_cast<const float4*>(&sO1[r * kOS + cc * 8]);
      const float4 y1 = *reinterpret_cast<const float4*>(&sO1[r * kOS + cc * 8 + 4]);
      if constexpr (Tr::kV2) {
        // both heads' outputs (bf16, for the backward) and out = a_2i - sigmoid(gate) a_2i+1
        const float gt = 1.f / (1.f + __expf(-__bfloat162float(p.gate[orow])));
        const std::int64_t arow = (static_cast<std::int64_t>(b) * T + t) * p.q_comps + 2 * head;
        *reinterpret_cast<uint4*>(p.att + arow * kD + cc * 8) = packed;
        *reinterpret_cast<uint4*>(p.att + (arow + 1) * kD + cc * 8) = pack_bf16x8(y0, y1);
        packed = pack_bf16x8_minus(x0, x1, y0, y1, gt);
      } else {
        packed = pack_bf16x8_minus(x0, x1, y0, y1, lam);
        if (p.out2 != nullptr)
          *reinterpret_cast<uint4*>(p.out2 + orow * kDV + cc * 8) = pack_bf16x8(y0, y1);
      }
    }
    *reinterpret_cast<uint4*>(p.out + orow * kDV + cc * 8) = packed;
  }
#else
  __trap();  // built only for sm_90a (launch_fwd never selects it elsewhere)
#endif
}

}  // namespace difftx::cuda::attn
