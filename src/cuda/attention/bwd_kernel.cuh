// Backward flash-attention kernel (FA2 style): one block per (kv head/group, batch, kv tile)
// accumulates dK and dV of its kv rows in registers while iterating over every query head of
// its GQA group and every query tile that sees the tile; dQ is accumulated into an fp32
// buffer with atomics (float2 red on sm_90). Scores are recomputed from Q, K and the saved lse.
//
// Warps are split into kMaps groups of kColWarps warps; warp (map, cg) owns kv rows
// [16 cg, 16 cg + 16) and works on the transposed score tile S^T = K Q^T (16 x kBlockM), so the
// accumulator layout of P^T / dS^T is directly the A operand of dV += P^T dO and dK += dS^T Q.
//   softmax (kMaps = 1): the warp owns dK (16 x d) and dV (16 x d).
//   DIFF V1 (kMaps = 2): map m owns dK_m (16 x d) and dV[:, m d : (m+1) d]. dP = dO V^T is the
//   same matrix for both maps (dA1 = dP, dA2 = -lambda dP), so
//     dS1 = P1 (dP - D1),  dS2 = P2 (-lambda dP - D2),  dV = (P1 - lambda P2)^T dO,
//   the combined P1 - lambda P2 being formed once through shared memory (one dV product, not
//   two). dQ_m = dS_m K_m is computed from dS^T staged in shared memory.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "mma.cuh"
#include "params.cuh"

namespace difftx::cuda::attn {

template <int kD_, bool kDiff_, int kColWarps_, int kBlockM_, int kMinBlocks_>
struct BwdTraits {
  static constexpr int kD = kD_;
  static constexpr bool kDiff = kDiff_;
  static constexpr int kColWarps = kColWarps_;
  static constexpr int kBlockM = kBlockM_;
  static constexpr int kMinBlocks = kMinBlocks_;
  static constexpr int kMaps = kDiff ? 2 : 1;
  static constexpr int kDV = kDiff ? 2 * kD : kD;
  static constexpr int kWarps = kColWarps * kMaps;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kBlockN = 16 * kColWarps;
  static constexpr int kQS = kD + 8;
  static constexpr int kVS = kDV + 8;
  static constexpr int kPS = kBlockM + 8;  // bf16 rows of the [kv][query] P / dS tiles
  static constexpr int kXS = kBlockM + 8;  // fp32 rows of the [kv][query] exchange tile
  // bf16 regions (elements)
  static constexpr int kKElems = kMaps * kBlockN * kQS;
  static constexpr int kVElems = kBlockN * kVS;
  static constexpr int kQElems = kMaps * kBlockM * kQS;
  static constexpr int kdOElems = kBlockM * kVS;
  static constexpr int kStageElems = kQElems + kdOElems;
  static constexpr int kdSElems = kMaps * kBlockN * kPS;
  static constexpr int kPcElems = kDiff ? kBlockN * kPS : 0;
  static constexpr int kBf16Elems = kKElems + kVElems + 2 * kStageElems + kdSElems + kPcElems;
  // fp32 regions: lse/delta per stage and map, then the P2 exchange tile
  static constexpr int kRowVecFloats = 2 * 2 * kMaps * kBlockM;
  static constexpr int kXFloats = kDiff ? kBlockN * kXS : 0;
  static constexpr int kSmemBytes = kBf16Elems * 2 + (kRowVecFloats + kXFloats) * 4;
  // dQ work split: (kBlockM / 16) row groups x kDqChunks column chunks over kColWarps warps
  static constexpr int kDqRowGroups = kBlockM / 16;
  static constexpr int kDqChunks = kColWarps / kDqRowGroups;
  static constexpr int kDqCols = kD / kDqChunks;
  static_assert(kBlockM % 16 == 0 && kColWarps % kDqRowGroups == 0, "bad dQ split");
  static_assert(kD % kDqChunks == 0 && kDqCols % 16 == 0, "bad dQ split");
  static_assert((kBf16Elems * 2) % 16 == 0, "fp32 region must stay 16-byte aligned");
};

__device__ __forceinline__ void atomic_add_f2(float* addr, float x, float y) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float2*>(addr), make_float2(x, y));
#else
  atomicAdd(addr, x);
  atomicAdd(addr + 1, y);
#endif
}

template <class Tr>
__global__ void __launch_bounds__(Tr::kThreads, Tr::kMinBlocks)
    attention_bwd_kernel(const BwdParams p) {
  constexpr int kD = Tr::kD, kDV = Tr::kDV, kMaps = Tr::kMaps, kBlockM = Tr::kBlockM;
  constexpr int kBlockN = Tr::kBlockN, kQS = Tr::kQS, kVS = Tr::kVS, kPS = Tr::kPS;
  constexpr int kXS = Tr::kXS, kThreads = Tr::kThreads;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  bf16* sK = reinterpret_cast<bf16*>(smem_raw);  // [kMaps][kBlockN][kQS]
  bf16* sV = sK + Tr::kKElems;                   // [kBlockN][kVS]
  bf16* sStage = sV + Tr::kVElems;           // 2 x { Q [kMaps][kBlockM][kQS], dO [kBlockM][kVS] }
  bf16* sdS = sStage + 2 * Tr::kStageElems;  // [kMaps][kBlockN][kPS]  (dS^T)
  bf16* sPc = sdS + Tr::kdSElems;            // [kBlockN][kPS]  (P1 - lambda P2)^T, DIFF only
  float* sRow = reinterpret_cast<float*>(smem_raw + Tr::kBf16Elems * 2);
  // sRow: [stage][0 = lse_log2, 1 = delta][kMaps][kBlockM]
  float* sX = sRow + Tr::kRowVecFloats;  // [kBlockN][kXS]  -lambda P2^T, DIFF only

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int map = warp / Tr::kColWarps, cg = warp % Tr::kColWarps;
  // grid (kv tiles, kv groups, batch): blocks running together add into one head's dQ rows,
  // which stay in L2; tile 0 sees the most query tiles and is scheduled first
  const int group = blockIdx.y, b = blockIdx.z;
  const int n0 = static_cast<int>(blockIdx.x) * kBlockN;
  const int T = p.q_len, S = p.kv_len;
  const int kv_rows = min(kBlockN, S - n0);

  auto k_comp = [&](int m) { return kMaps == 2 ? 2 * group + m : group; };
  const int vh = group;

  const int t_first = max(0, n0 - p.q_offset);  // first query that sees a key of this tile
  const int m_begin = t_first / kBlockM;
  const int m_end = (T + kBlockM - 1) / kBlockM;
  const int m_count = max(0, m_end - m_begin);
  const int total = p.n_rep * m_count;

  // K and V of this tile stay in shared memory for the whole block.
  const std::int64_t kvrow0 = static_cast<std::int64_t>(b) * S + n0;
#pragma unroll
  for (int m = 0; m < kMaps; ++m) {
    load_tile_async<kBlockN, kD, kThreads>(sK + m * kBlockN * kQS, kQS,
                                           p.k + kvrow0 * p.k_stride + k_comp(m) * kD, p.k_stride,
                                           kv_rows, tid);
  }
  load_tile_async<kBlockN, kDV, kThreads>(sV, kVS, p.v + kvrow0 * p.v_stride + vh * kDV, p.v_stride,
                                          kv_rows, tid);

  auto work_item = [&](int it, int& head, int& m_block) {
    head = group * p.n_rep + it / m_count;
    m_block = m_begin + it % m_count;
  };
  auto q_comp = [&](int head, int m) { return kMaps == 2 ? 2 * head + m : head; };
  auto load_stage = [&](int it, int stage) {
    int head, m_block;
    work_item(it, head, m_block);
    const int t0 = m_block * kBlockM;
    const int rows = min(kBlockM, T - t0);
    bf16* sQ = sStage + stage * Tr::kStageElems;
    bf16* sdO = sQ + Tr::kQElems;
    const std::int64_t qrow0 = static_cast<std::int64_t>(b) * T + t0;
#pragma unroll
    for (int m = 0; m < kMaps; ++m) {
      load_tile_async<kBlockM, kD, kThreads>(sQ + m * kBlockM * kQS, kQS,
                                             p.q + qrow0 * p.q_stride + q_comp(head, m) * kD,
                                             p.q_stride, rows, tid);
    }
    load_tile_async<kBlockM, kDV, kThreads>(sdO, kVS, p.dout + (qrow0 * p.heads + head) * kDV,
                                            static_cast<std::int64_t>(p.heads) * kDV, rows, tid);
    // lse_log2 and delta rows (padded to t_pad, so no bounds check)
    constexpr int kVecChunks = kBlockM / 4;
    for (int c = tid; c < 2 * kMaps * kVecChunks; c += kThreads) {
      const int which = c / (kMaps * kVecChunks);
      const int m = (c / kVecChunks) % kMaps;
      const int cc = c % kVecChunks;
      const float* src = (which == 0 ? p.lse_log2 : p.delta) +
                         (static_cast<std::int64_t>(b) * p.q_comps + q_comp(head, m)) * p.t_pad +
                         t0 + cc * 4;
      cp_async_16(sRow + ((stage * 2 + which) * kMaps + m) * kBlockM + cc * 4, src, 16);
    }
  };
  if (total > 0) load_stage(0, 0);
  cp_async_commit();

  float dk[kD / 8][4], dv[kD / 8][4];
#pragma unroll
  for (int i = 0; i < kD / 8; ++i) {
    dk[i][0] = dk[i][1] = dk[i][2] = dk[i][3] = 0.f;
    dv[i][0] = dv[i][1] = dv[i][2] = dv[i][3] = 0.f;
  }
  const float lam = kMaps == 2 ? *p.lambda : 0.f;
  const float dp_coef = map == 1 ? -lam : 1.f;
  const int kr0 = cg * 16;
  const int g = lane >> 2, c2 = (lane & 3) * 2;
  const bf16* sKm = sK + map * kBlockN * kQS;
  bf16* sdSm = sdS + map * kBlockN * kPS;

  for (int it = 0; it < total; ++it) {
    const int stage = it & 1;
    cp_async_wait<0>();
    __syncthreads();  // stage `it` landed; every warp finished iteration it - 1
    if (it + 1 < total) load_stage(it + 1, stage ^ 1);
    cp_async_commit();

    int head, m_block;
    work_item(it, head, m_block);
    const int t0 = m_block * kBlockM;
    const bf16* sQm = sStage + stage * Tr::kStageElems + map * kBlockM * kQS;
    const bf16* sdO = sStage + stage * Tr::kStageElems + Tr::kQElems;
    const float* sLse = sRow + ((stage * 2 + 0) * kMaps + map) * kBlockM;
    const float* sDel = sRow + ((stage * 2 + 1) * kMaps + map) * kBlockM;

    // S^T = K_m Q_m^T (16 kv rows x kBlockM queries)
    float st[kBlockM / 8][4];
#pragma unroll
    for (int i = 0; i < kBlockM / 8; ++i) st[i][0] = st[i][1] = st[i][2] = st[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      std::uint32_t a[4];
      load_a(a, sKm, kQS, kr0, kk * 16, lane);
#pragma unroll
      for (int nn = 0; nn < kBlockM / 16; ++nn) {
        std::uint32_t bb[4];
        load_b(bb, sQm, kQS, nn * 16, kk * 16, lane);
        mma_bf16(st[2 * nn], a, bb[0], bb[1]);
        mma_bf16(st[2 * nn + 1], a, bb[2], bb[3]);
      }
    }
    // P^T = exp(S^T * scale - lse); masked keys (causal, beyond kv_len) -> 0. Padded query
    // rows have lse = +inf and give 0 on their own.
    const bool need_mask = n0 + kBlockN > S || n0 + kBlockN - 1 > p.q_offset + t0;
#pragma unroll
    for (int nt = 0; nt < kBlockM / 8; ++nt) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int tq = nt * 8 + c2 + (j & 1);
        const int key = n0 + kr0 + g + (j >> 1) * 8;
        float pv = exp2f(fmaf(st[nt][j], p.scale_log2, -sLse[tq]));
        if (need_mask && (key >= S || key > p.q_offset + t0 + tq)) pv = 0.f;
        st[nt][j] = pv;
      }
    }
    // dP^T = V dO^T (16 x kBlockM), contraction over dv
    float dp[kBlockM / 8][4];
#pragma unroll
    for (int i = 0; i < kBlockM / 8; ++i) dp[i][0] = dp[i][1] = dp[i][2] = dp[i][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < kDV / 16; ++kk) {
      std::uint32_t a[4];
      load_a(a, sV, kVS, kr0, kk * 16, lane);
#pragma unroll
      for (int nn = 0; nn < kBlockM / 16; ++nn) {
        std::uint32_t bb[4];
        load_b(bb, sdO, kVS, nn * 16, kk * 16, lane);
        mma_bf16(dp[2 * nn], a, bb[0], bb[1]);
        mma_bf16(dp[2 * nn + 1], a, bb[2], bb[3]);
      }
    }
    // dS^T = P^T (coef dP^T - D); stage dS^T (bf16) for the dQ product
#pragma unroll
    for (int nt = 0; nt < kBlockM / 8; ++nt) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int tq = nt * 8 + c2 + (j & 1);
        dp[nt][j] = st[nt][j] * (dp_coef * dp[nt][j] - sDel[tq]);
      }
      *reinterpret_cast<std::uint32_t*>(&sdSm[(kr0 + g) * kPS + nt * 8 + c2]) =
          pack_bf16(dp[nt][0], dp[nt][1]);
      *reinterpret_cast<std::uint32_t*>(&sdSm[(kr0 + g + 8) * kPS + nt * 8 + c2]) =
          pack_bf16(dp[nt][2], dp[nt][3]);
    }
    if constexpr (kMaps == 2) {
      if (map == 1) {
#pragma unroll
        for (int nt = 0; nt < kBlockM / 8; ++nt) {
          *reinterpret_cast<float2*>(&sX[(kr0 + g) * kXS + nt * 8 + c2]) =
              make_float2(-lam * st[nt][0], -lam * st[nt][1]);
          *reinterpret_cast<float2*>(&sX[(kr0 + g + 8) * kXS + nt * 8 + c2]) =
              make_float2(-lam * st[nt][2], -lam * st[nt][3]);
        }
      }
    }
    __syncthreads();  // dS^T of every warp (and -lambda P2^T) visible

    // A fragments of the dV product: P^T (softmax) or (P1 - lambda P2)^T (DIFF, map 0 forms it)
    std::uint32_t pa[kBlockM / 16][4];
    if (kMaps == 1 || map == 0) {
      if constexpr (kMaps == 2) {
#pragma unroll
        for (int nt = 0; nt < kBlockM / 8; ++nt) {
          const float2 x0 = *reinterpret_cast<const float2*>(&sX[(kr0 + g) * kXS + nt * 8 + c2]);
          const float2 x1 =
              *reinterpret_cast<const float2*>(&sX[(kr0 + g + 8) * kXS + nt * 8 + c2]);
          st[nt][0] += x0.x;
          st[nt][1] += x0.y;
          st[nt][2] += x1.x;
          st[nt][3] += x1.y;
        }
      }
#pragma unroll
      for (int kt = 0; kt < kBlockM / 16; ++kt) {
        pa[kt][0] = pack_bf16(st[2 * kt][0], st[2 * kt][1]);
        pa[kt][1] = pack_bf16(st[2 * kt][2], st[2 * kt][3]);
        pa[kt][2] = pack_bf16(st[2 * kt + 1][0], st[2 * kt + 1][1]);
        pa[kt][3] = pack_bf16(st[2 * kt + 1][2], st[2 * kt + 1][3]);
        if constexpr (kMaps == 2) {
          *reinterpret_cast<std::uint32_t*>(&sPc[(kr0 + g) * kPS + kt * 16 + c2]) = pa[kt][0];
          *reinterpret_cast<std::uint32_t*>(&sPc[(kr0 + g + 8) * kPS + kt * 16 + c2]) = pa[kt][1];
          *reinterpret_cast<std::uint32_t*>(&sPc[(kr0 + g) * kPS + kt * 16 + 8 + c2]) = pa[kt][2];
          *reinterpret_cast<std::uint32_t*>(&sPc[(kr0 + g + 8) * kPS + kt * 16 + 8 + c2]) =
              pa[kt][3];
        }
      }
    }

    // dK_m += dS^T Q_m (contraction over the query tile)
#pragma unroll
    for (int kt = 0; kt < kBlockM / 16; ++kt) {
      const std::uint32_t a[4] = {pack_bf16(dp[2 * kt][0], dp[2 * kt][1]),
                                  pack_bf16(dp[2 * kt][2], dp[2 * kt][3]),
                                  pack_bf16(dp[2 * kt + 1][0], dp[2 * kt + 1][1]),
                                  pack_bf16(dp[2 * kt + 1][2], dp[2 * kt + 1][3])};
#pragma unroll
      for (int nd = 0; nd < kD / 16; ++nd) {
        std::uint32_t bb[4];
        load_b_trans(bb, sQm, kQS, nd * 16, kt * 16, lane);
        mma_bf16(dk[2 * nd], a, bb[0], bb[1]);
        mma_bf16(dk[2 * nd + 1], a, bb[2], bb[3]);
      }
    }

    // dQ_m (rows of this warp's piece) += dS_m K_m, added to the fp32 accumulator
    {
      const int rq = (cg % Tr::kDqRowGroups) * 16;
      const int cq = (cg / Tr::kDqRowGroups) * Tr::kDqCols;
      float acc[Tr::kDqCols / 8][4];
#pragma unroll
      for (int i = 0; i < Tr::kDqCols / 8; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < kBlockN / 16; ++kk) {
        std::uint32_t a[4];
        load_a_trans(a, sdSm, kPS, rq, kk * 16, lane);
#pragma unroll
        for (int nd = 0; nd < Tr::kDqCols / 16; ++nd) {
          std::uint32_t bb[4];
          load_b_trans(bb, sKm, kQS, cq + nd * 16, kk * 16, lane);
          mma_bf16(acc[2 * nd], a, bb[0], bb[1]);
          mma_bf16(acc[2 * nd + 1], a, bb[2], bb[3]);
        }
      }
      const int comp = q_comp(head, map);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int t = t0 + rq + g + r * 8;
        if (t < T) {
          float* dst = p.dq_accum +
                       ((static_cast<std::int64_t>(b) * T + t) * p.q_comps + comp) * kD + cq + c2;
#pragma unroll
          for (int i = 0; i < Tr::kDqCols / 8; ++i) {
            atomic_add_f2(dst + i * 8, acc[i][2 * r], acc[i][2 * r + 1]);
          }
        }
      }
    }

    if constexpr (kMaps == 2) {
      __syncthreads();  // (P1 - lambda P2)^T complete in sPc
      if (map == 1) {
#pragma unroll
        for (int kt = 0; kt < kBlockM / 16; ++kt) load_a(pa[kt], sPc, kPS, kr0, kt * 16, lane);
      }
    }
    // dV[:, map d : map d + d] += Pc^T dO
#pragma unroll
    for (int kt = 0; kt < kBlockM / 16; ++kt) {
#pragma unroll
      for (int nd = 0; nd < kD / 16; ++nd) {
        std::uint32_t bb[4];
        load_b_trans(bb, sdO, kVS, map * kD + nd * 16, kt * 16, lane);
        mma_bf16(dv[2 * nd], pa[kt], bb[0], bb[1]);
        mma_bf16(dv[2 * nd + 1], pa[kt], bb[2], bb[3]);
      }
    }
  }
  cp_async_wait<0>();

  // ---- epilogue: dK (scaled) and this warp's dV slice, rows < kv_len
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int kr = kr0 + g + r * 8;
    if (kr < kv_rows) {
      const std::int64_t row = kvrow0 + kr;
      bf16* dk_row = p.dk + row * p.k_stride + k_comp(map) * kD;
      bf16* dv_row = p.dv + row * p.v_stride + vh * kDV + map * kD;
#pragma unroll
      for (int i = 0; i < kD / 8; ++i) {
        *reinterpret_cast<std::uint32_t*>(dk_row + i * 8 + c2) =
            pack_bf16(dk[i][2 * r] * p.scale, dk[i][2 * r + 1] * p.scale);
        *reinterpret_cast<std::uint32_t*>(dv_row + i * 8 + c2) =
            pack_bf16(dv[i][2 * r], dv[i][2 * r + 1]);
      }
    }
  }
}

}  // namespace difftx::cuda::attn
