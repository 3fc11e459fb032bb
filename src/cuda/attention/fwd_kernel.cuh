// Forward flash-attention kernel family (FA2 style: mma.sync m16n8k16 bf16, ldmatrix, cp.async
// double buffering, online softmax in fp32, causal tile skipping, longest tiles first).
//
// One block per (head, batch, query tile). Warps are split into kMaps groups of kRowWarps warps;
// warp (map, rg) owns query rows [16 rg, 16 rg + 16) of map `map`:
//   softmax (kMaps = 1): one query component, its kv head;
//   DIFF V1 (kMaps = 2): map 0 = Q1 K1^T, map 1 = Q2 K2^T. Both maps read the SAME V tile from
//   shared memory, so each K1/K2/V tile is loaded from global memory once per block. Each warp
//   keeps its own 16 x 2d fp32 accumulator (the value width is covered by the map split, not by
//   splitting d: no score is computed twice). The epilogue stages O1/l1 and O2/l2 (fp32) in
//   shared memory and writes out = O1 - lambda O2 and out2 = O2 with 16-byte coalesced stores.
#pragma once

#include <cuda_bf16.h>

#include <cfloat>
#include <cstdint>

#include "mma.cuh"
#include "params.cuh"

namespace difftx::cuda::attn {

template <int kD_, bool kDiff_, int kRowWarps_, int kBlockN_, int kMinBlocks_>
struct FwdTraits {
  static constexpr int kD = kD_;
  static constexpr bool kDiff = kDiff_;
  static constexpr int kRowWarps = kRowWarps_;
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kMinBlocks = kMinBlocks_;
  static constexpr int kMaps = kDiff ? 2 : 1;
  static constexpr int kDV = kDiff ? 2 * kD : kD;
  static constexpr int kWarps = kRowWarps * kMaps;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockM = 16 * kRowWarps;
  static constexpr int kQS = kD + 8;   // padded shared row of Q/K tiles (elements)
  static constexpr int kVS = kDV + 8;  // padded shared row of V tiles
  static constexpr int kOS = kDV + 8;  // padded fp32 row of the epilogue staging tile
  static constexpr int kQElems = kMaps * kBlockM * kQS;
  static constexpr int kKElems = kMaps * kBlockN * kQS;
  static constexpr int kVElems = kBlockN * kVS;
  static constexpr int kStageElems = kKElems + kVElems;
  static constexpr int kMainBytes = (kQElems + 2 * kStageElems) * 2;
  static constexpr int kEpiBytes = kMaps * kBlockM * kOS * 4;
  static constexpr int kSmemBytes = kMainBytes > kEpiBytes ? kMainBytes : kEpiBytes;
  static_assert(kD % 16 == 0 && kBlockN % 16 == 0, "tile sizes must be multiples of 16");
};

template <class Tr>
__global__ void __launch_bounds__(Tr::kThreads, Tr::kMinBlocks)
    attention_fwd_kernel(const FwdParams p) {
  constexpr int kD = Tr::kD, kDV = Tr::kDV, kMaps = Tr::kMaps, kBlockM = Tr::kBlockM;
  constexpr int kBlockN = Tr::kBlockN, kQS = Tr::kQS, kVS = Tr::kVS, kOS = Tr::kOS;
  constexpr int kThreads = Tr::kThreads;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);  // [kMaps][kBlockM][kQS]
  bf16* sKV = sQ + Tr::kQElems;  // 2 stages of { K [kMaps][kBlockN][kQS], V [kBlockN][kVS] }

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int map = warp / Tr::kRowWarps, rg = warp % Tr::kRowWarps;
  // grid (query tiles, heads, batch): blocks running together share one head's K/V in L2;
  // the longest tiles (most keys) are scheduled first
  const int head = blockIdx.y, b = blockIdx.z;
  const int m_block = p.num_m_blocks - 1 - static_cast<int>(blockIdx.x);
  const int m0 = m_block * kBlockM;
  const int T = p.q_len, S = p.kv_len;
  const int kv_group = head / p.n_rep;

  // component slots: DIFF V1 head i uses q 2i, 2i+1 and k 2j, 2j+1 (j its kv group)
  auto q_comp = [&](int m) { return kMaps == 2 ? 2 * head + m : head; };
  auto k_comp = [&](int m) { return kMaps == 2 ? 2 * kv_group + m : kv_group; };
  const int vh = kv_group;

  const int q_rows = min(kBlockM, T - m0);
  const int kv_end = min(S, p.q_offset + m0 + q_rows);  // keys visible to the tile's last row
  const int n_blocks = (kv_end + kBlockN - 1) / kBlockN;

#pragma unroll
  for (int m = 0; m < kMaps; ++m) {
    load_tile_async<kBlockM, kD, kThreads>(
        sQ + m * kBlockM * kQS, kQS,
        p.q + (static_cast<std::int64_t>(b) * T + m0) * p.q_stride + q_comp(m) * kD, p.q_stride,
        q_rows, tid);
  }
  auto load_kv = [&](int n, int stage) {
    bf16* sK = sKV + stage * Tr::kStageElems;
    bf16* sV = sK + Tr::kKElems;
    const int s0 = n * kBlockN;
    const int valid = min(kBlockN, S - s0);
    const std::int64_t row0 = static_cast<std::int64_t>(b) * S + s0;
#pragma unroll
    for (int m = 0; m < kMaps; ++m) {
      load_tile_async<kBlockN, kD, kThreads>(sK + m * kBlockN * kQS, kQS,
                                             p.k + row0 * p.k_stride + k_comp(m) * kD, p.k_stride,
                                             valid, tid);
    }
    load_tile_async<kBlockN, kDV, kThreads>(sV, kVS, p.v + row0 * p.v_stride + vh * kDV, p.v_stride,
                                            valid, tid);
  };
  load_kv(n_blocks - 1, 0);
  cp_async_commit();

  float o[kDV / 8][4];
#pragma unroll
  for (int i = 0; i < kDV / 8; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
  float row_max[2] = {-INFINITY, -INFINITY};  // running max, in scaled log2 units
  float row_sum[2] = {0.f, 0.f};              // per-thread partial sums
  const bf16* sQm = sQ + map * kBlockM * kQS;
  const int r_lo = rg * 16 + (lane >> 2);  // tile row of c[0..1]; c[2..3] is r_lo + 8
  const int t_lo = m0 + r_lo;
  const float scale_log2 = p.scale_log2;

  for (int it = 0, n = n_blocks - 1; n >= 0; ++it, --n) {
    const int stage = it & 1;
    cp_async_wait<0>();
    __syncthreads();  // tile n landed; every warp is done with the other stage
    if (n > 0) load_kv(n - 1, stage ^ 1);
    cp_async_commit();

    const bf16* sK = sKV + stage * Tr::kStageElems + map * kBlockN * kQS;
    const bf16* sV = sKV + stage * Tr::kStageElems + Tr::kKElems;

    // S = Q K^T  (16 x kBlockN per warp)
    float s[kBlockN / 8][4];
#pragma unroll
    for (int i = 0; i < kBlockN / 8; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      std::uint32_t a[4];
      load_a(a, sQm, kQS, rg * 16, kk * 16, lane);
#pragma unroll
      for (int nn = 0; nn < kBlockN / 16; ++nn) {
        std::uint32_t bb[4];
        load_b(bb, sK, kQS, nn * 16, kk * 16, lane);
        mma_bf16(s[2 * nn], a, bb[0], bb[1]);
        mma_bf16(s[2 * nn + 1], a, bb[2], bb[3]);
      }
    }

    const int s0 = n * kBlockN;
    if (s0 + kBlockN > S || s0 + kBlockN - 1 > p.q_offset + m0) {
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int key = s0 + nt * 8 + (lane & 3) * 2 + (j & 1);
          const int t = t_lo + (j >> 1) * 8;
          if (key >= S || key > p.q_offset + t) s[nt][j] = -INFINITY;
        }
      }
    }

    // online softmax, two rows per thread (r = 0: c[0..1], r = 1: c[2..3])
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt)
        mx = fmaxf(mx, fmaxf(s[nt][2 * r], s[nt][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(row_max[r], mx * scale_log2);
      const float m_use = m_new == -INFINITY ? 0.f : m_new;
      const float alpha = exp2f(row_max[r] - m_use);
      row_max[r] = m_new;
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < kBlockN / 8; ++nt) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const float pv = exp2f(fmaf(s[nt][2 * r + j], scale_log2, -m_use));
          s[nt][2 * r + j] = pv;
          sum += pv;
        }
      }
      row_sum[r] = row_sum[r] * alpha + sum;
#pragma unroll
      for (int i = 0; i < kDV / 8; ++i) {
        o[i][2 * r] *= alpha;
        o[i][2 * r + 1] *= alpha;
      }
    }

    // O += P V: P (bf16) straight from the score registers, V from shared memory
#pragma unroll
    for (int kt = 0; kt < kBlockN / 16; ++kt) {
      const std::uint32_t a[4] = {pack_bf16(s[2 * kt][0], s[2 * kt][1]),
                                  pack_bf16(s[2 * kt][2], s[2 * kt][3]),
                                  pack_bf16(s[2 * kt + 1][0], s[2 * kt + 1][1]),
                                  pack_bf16(s[2 * kt + 1][2], s[2 * kt + 1][3])};
#pragma unroll
      for (int nv = 0; nv < kDV / 16; ++nv) {
        std::uint32_t bb[4];
        load_b_trans(bb, sV, kVS, nv * 16, kt * 16, lane);
        mma_bf16(o[2 * nv], a, bb[0], bb[1]);
        mma_bf16(o[2 * nv + 1], a, bb[2], bb[3]);
      }
    }
  }

  // ---- epilogue
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
  __syncthreads();  // all warps are done with the K/V stages: reuse shared memory
  float* sO = reinterpret_cast<float*>(smem_raw) + map * kBlockM * kOS;  // [kMaps][kBlockM][kOS]
#pragma unroll
  for (int i = 0; i < kDV / 8; ++i) {
    const int col = i * 8 + (lane & 3) * 2;
    *reinterpret_cast<float2*>(&sO[r_lo * kOS + col]) =
        make_float2(o[i][0] * inv[0], o[i][1] * inv[0]);
    *reinterpret_cast<float2*>(&sO[(r_lo + 8) * kOS + col]) =
        make_float2(o[i][2] * inv[1], o[i][3] * inv[1]);
  }
  __syncthreads();

  const float* sO0 = reinterpret_cast<const float*>(smem_raw);
  const float lam = kMaps == 2 ? *p.lambda : 0.f;
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
      const float* sO1 = sO0 + kBlockM * kOS;
      const float4 y0 = *reinterpret_cast<const float4*>(&sO1[r * kOS + cc * 8]);
      const float4 y1 = *reinterpret_cast<const float4*>(&sO1[r * kOS + cc * 8 + 4]);
      packed = pack_bf16x8_minus(x0, x1, y0, y1, lam);
      if (p.out2 != nullptr)
        *reinterpret_cast<uint4*>(p.out2 + orow * kDV + cc * 8) = pack_bf16x8(y0, y1);
    }
    *reinterpret_cast<uint4*>(p.out + orow * kDV + cc * 8) = packed;
  }
}

}  // namespace difftx::cuda::attn
