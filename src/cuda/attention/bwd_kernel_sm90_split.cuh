// Backward DIFF V1 kernel for Hopper (sm_90a), d = 64, with the kv rows split between the
// warpgroups: one block per 128-row kv tile (and kv group, batch); warpgroup w owns kv rows
// [64 w, 64 w + 64) for BOTH maps. Compared with bwd_kernel_sm90.cuh (warpgroup = map, 64-row
// kv tiles) this computes dP^T = V dO^T once instead of once per map, needs no P^T exchange
// between the warpgroups (P1 - lambda P2 is formed in registers), and halves the dQ atomics per
// kv row (each dQ product covers 128 kv rows). Registers per thread: dK1, dK2 (32 + 32) and the
// full dV row block (64 x 2d = 64) persist; S1^T, S2^T, dP^T (3 x 32) per iteration. At d = 128
// the persistent part alone would be 256 registers, so d = 128 keeps the map split.
//
// Per work item (query head of the GQA group, 64-row query tile), warpgroup w:
//   S_m^T = K_m[w] Q_m^T, dP^T = V[w] dO^T                                (K-major operands)
//   P_m = exp2(S_m^T scale - lse_m), dS_1 = P1 (dP - D1), dS_2 = P2 (-lambda dP - D2)
//   dV[w] += (P1 - lambda P2)^T dO, dK_m[w] += dS_m^T Q_m                   (A from registers)
//   dS_m^T staged in shared memory ([128 kv][64 q] per map); block barrier;
//   dQ_w = dS_w K_w over all 128 kv rows (warpgroup w does map w), fp32 atomics.
// Loads as in bwd_kernel_sm90.cuh: K/V once, Q1, Q2, dO (TMA) and lse / D rows (bulk copies)
// through a two-stage mbarrier pipeline fed by the first thread of warpgroup 1.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "bwd_pipeline_sm90.cuh"
#include "mma.cuh"
#include "params.cuh"
#include "tma.cuh"
#include "wgmma.cuh"

namespace difftx::cuda::attn {

struct BwdSm90SplitTraits {
  static constexpr int kD = 64;
  static constexpr bool kDiff = true;
  static constexpr int kDV = 2 * kD;
  static constexpr int kThreads = 256;
  static constexpr int kBlockN = 128;  // kv rows per block
  static constexpr int kBlockM = 64;   // query rows per iteration
  static constexpr int kKTileBytes = kBlockN * kD * 2;
  static constexpr int kKBytes = 2 * kKTileBytes;
  static constexpr int kVBytes = kBlockN * kDV * 2;
  static constexpr int kQTileBytes = kBlockM * kD * 2;
  static constexpr int kdOBytes = kBlockM * kDV * 2;
  static constexpr int kStageBytes = 2 * kQTileBytes + kdOBytes;
  static constexpr int kRowBytes = 2 * 2 * kBlockM * 4;       // [lse, D][map][row] f32 of one stage
  static constexpr int kdSTileBytes = kBlockN * kBlockM * 2;  // dS_m^T, [128 kv][64 q]
  static constexpr int kOffV = kKBytes;
  static constexpr int kOffStage = kOffV + kVBytes;
  static constexpr int kOffdS = kOffStage + 2 * kStageBytes;
  static constexpr int kOffRow = kOffdS + 2 * kdSTileBytes;
  static constexpr int kOffBar = kOffRow + 2 * kRowBytes;
  static constexpr int kSmemBytes = kOffBar + 5 * 8;  // full[2], empty[2], kv
  static_assert(kSmemBytes <= 232448, "shared memory per block exceeds 227 KB");
};

template <class Tr>
__global__ void __launch_bounds__(Tr::kThreads, 1)
    attention_bwd_sm90_split_kernel(const __grid_constant__ BwdParams p,
                                    const __grid_constant__ TileMaps maps) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int kD = Tr::kD, kDV = Tr::kDV, kBlockM = Tr::kBlockM, kBlockN = Tr::kBlockN;

  extern __shared__ __align__(1024) unsigned char smem[];
  if ((smem_addr(smem) & 1023u) != 0) __trap();
  unsigned char* sK = smem;                      // K_m at m * kKTileBytes: sw128 [128][64]
  unsigned char* sV = smem + Tr::kOffV;          // sw128 [128][128] (2 panels)
  unsigned char* sStage = smem + Tr::kOffStage;  // 2 x { Q1, Q2 [64][64], dO [64][128] }
  unsigned char* sdS = smem + Tr::kOffdS;        // dS_m^T at m * kdSTileBytes: sw128 [128][64]
  float* sRow = reinterpret_cast<float*>(smem + Tr::kOffRow);
  const std::uint32_t bar0 = smem_addr(smem + Tr::kOffBar);
  auto full_bar = [&](int st) { return bar0 + 8u * st; };
  auto empty_bar = [&](int st) { return bar0 + 8u * (2 + st); };
  const std::uint32_t kv_bar = bar0 + 32u;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wg = warp >> 2, wq = warp & 3;
  const int kv_off = 64 * wg;  // this warpgroup's kv rows in the tile
  const int g = lane >> 2, c2 = (lane & 3) * 2;
  const int group = blockIdx.y, b = blockIdx.z;
  const int n0 = static_cast<int>(blockIdx.x) * kBlockN;
  const int S = p.kv_len;
  const int kv_rows = min(kBlockN, S - n0);
  auto k_comp = [&](int m) { return 2 * group + m; };
  auto q_comp = [&](int head, int m) { return 2 * head + m; };
  const int vh = group;

  const BwdWorkList<kBlockM> work(p, group, n0);
  const int total = work.total;
  const std::int64_t kvrow0 = static_cast<std::int64_t>(b) * S + n0;

  auto load_stage = [&](int it, int stage) {
    int head, t0;
    work.item(it, head, t0);
    bwd_load_stage<2, kD, kDV, kBlockM>(p, maps, sStage + stage * Tr::kStageBytes,
                                        sRow + stage * 4 * kBlockM, head, t0, b, full_bar(stage));
  };
  if (tid == 0) bwd_init_barriers(bar0);
  __syncthreads();
  const bool producer = tid == 128;
  if (producer) {
    bwd_load_kv<2, kD, kDV, kBlockN>(maps, sK, sV, k_comp(0), vh, n0, b, kv_bar);
    if (total > 0) load_stage(0, 0);
  }
  __syncwarp();

  float dk1[kD / 2], dk2[kD / 2], dv[kDV / 2];
#pragma unroll
  for (int i = 0; i < kD / 2; ++i) dk1[i] = dk2[i] = 0.f;
#pragma unroll
  for (int i = 0; i < kDV / 2; ++i) dv[i] = 0.f;
  const float lam = *p.lambda;
  const std::uint32_t k1_addr = smem_addr(sK), k2_addr = k1_addr + Tr::kKTileBytes;
  const std::uint32_t v_addr = smem_addr(sV);
  const std::uint32_t ds_own = smem_addr(sdS) + wg * Tr::kdSTileBytes;  // dS_wg^T (for dQ)
  const std::uint32_t k_own = smem_addr(sK) + wg * Tr::kKTileBytes;     // K_wg (for dQ)

  mbar_wait(kv_bar, 0);
  for (int it = 0; it < total; ++it) {
    const int stage = it & 1;
    bwd_next_stage(it, total, producer, bar0, load_stage);

    int head, t0;
    work.item(it, head, t0);
    const std::uint32_t q1_addr = smem_addr(sStage + stage * Tr::kStageBytes);
    const std::uint32_t q2_addr = q1_addr + Tr::kQTileBytes;
    const std::uint32_t do_addr = q1_addr + 2 * Tr::kQTileBytes;
    const float* rows = sRow + stage * 4 * kBlockM;  // [lse1, lse2, D1, D2][64]

    // S1^T, S2^T (64 kv x 64 q, k = d) and dP^T (k = 2d), all K-major
    float s1[32], s2[32], dp[32];
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      wgmma_ss<0, 0>(s1, sw128_desc(k1_addr + kv_off * 128 + kk * 32, 16, 1024),
                     sw128_desc(q1_addr + kk * 32, 16, 1024), kk > 0 ? 1 : 0);
    }
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      wgmma_ss<0, 0>(s2, sw128_desc(k2_addr + kv_off * 128 + kk * 32, 16, 1024),
                     sw128_desc(q2_addr + kk * 32, 16, 1024), kk > 0 ? 1 : 0);
    }
#pragma unroll
    for (int kk = 0; kk < kDV / 16; ++kk) {
      wgmma_ss<0, 0>(
          dp,
          sw128_desc(v_addr + (kk >> 2) * kBlockN * 128 + kv_off * 128 + (kk & 3) * 32, 16, 1024),
          sw128_desc(do_addr + (kk >> 2) * kBlockM * 128 + (kk & 3) * 32, 16, 1024),
          kk > 0 ? 1 : 0);
    }
    wgmma_commit();
    wgmma_wait<0>();

    // Pc = P1 - lambda P2, dS1, dS2, packed to bf16 A fragments as they are formed (word r of
    // fragment kt holds elements 8 kt + 2 r, + 1);
    // d[4i + j]: kv row 16 wq + g + 8 (j >> 1) (of this warpgroup), query 8 i + c2 + (j & 1)
    const bool need_mask = n0 + kv_off + 64 > S || n0 + kv_off + 63 > p.q_offset + t0;
    std::uint32_t pa[4][4], ds1a[4][4], ds2a[4][4];
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const float2 l1 = *reinterpret_cast<const float2*>(rows + i * 8 + c2);
      const float2 l2 = *reinterpret_cast<const float2*>(rows + kBlockM + i * 8 + c2);
      const float2 d1 = *reinterpret_cast<const float2*>(rows + 2 * kBlockM + i * 8 + c2);
      const float2 d2 = *reinterpret_cast<const float2*>(rows + 3 * kBlockM + i * 8 + c2);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float pc[2], ds1[2], ds2[2];
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const int e = 4 * i + 2 * h + c;
          float p1 = fast_exp2(fmaf(s1[e], p.scale_log2, -(c ? l1.y : l1.x)));
          float p2 = fast_exp2(fmaf(s2[e], p.scale_log2, -(c ? l2.y : l2.x)));
          if (need_mask) {
            const int tq = i * 8 + c2 + c;
            const int key = n0 + kv_off + wq * 16 + g + h * 8;
            if (key >= S || key > p.q_offset + t0 + tq) p1 = p2 = 0.f;
          }
          const float x = dp[e];
          ds1[c] = p1 * (x - (c ? d1.y : d1.x));
          ds2[c] = p2 * (-lam * x - (c ? d2.y : d2.x));
          pc[c] = p1 - lam * p2;
        }
        const int kt = i >> 1, r = ((i & 1) << 1) | h;
        pa[kt][r] = pack_bf16(pc[0], pc[1]);
        ds1a[kt][r] = pack_bf16(ds1[0], ds1[1]);
        ds2a[kt][r] = pack_bf16(ds2[0], ds2[1]);
      }
    }
    // stage dS1^T, dS2^T (bf16, sw128 [kv][query]) once the previous iteration's dQ products
    // (which read both warpgroups' rows) are done
    if (it > 0) named_bar_sync(1, 256);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int kr = kv_off + wq * 16 + g + h * 8;
        const int off = kr * 128 + ((i ^ (kr & 7)) << 4) + c2 * 2;
        const int kt = i >> 1, r = ((i & 1) << 1) | h;
        *reinterpret_cast<std::uint32_t*>(sdS + off) = ds1a[kt][r];
        *reinterpret_cast<std::uint32_t*>(sdS + Tr::kdSTileBytes + off) = ds2a[kt][r];
      }
    }
    fence_proxy_async();

    // dV[w] += Pc^T dO (N = 2d), dK_m[w] += dS_m^T Q_m (Q, dO MN-major); they need no barrier
    wgmma_fence();
#pragma unroll
    for (int kt = 0; kt < 4; ++kt) {
      wgmma_rs<1>(dv, pa[kt], sw128_desc(do_addr + kt * 16 * 128, kBlockM * 128, 1024), 1);
    }
#pragma unroll
    for (int kt = 0; kt < 4; ++kt) {
      wgmma_rs<1>(dk1, ds1a[kt], sw128_desc(q1_addr + kt * 16 * 128, kBlockM * 128, 1024), 1);
    }
#pragma unroll
    for (int kt = 0; kt < 4; ++kt) {
      wgmma_rs<1>(dk2, ds2a[kt], sw128_desc(q2_addr + kt * 16 * 128, kBlockM * 128, 1024), 1);
    }
    wgmma_commit();
    named_bar_sync(1, 256);  // both warpgroups' dS^T rows staged

    // dQ_wg = dS_wg K_wg over the 128 kv rows (dS^T and K MN-major)
    float acc[32];
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      wgmma_ss<1, 1>(acc, sw128_desc(ds_own + kk * 16 * 128, kBlockN * 128, 1024),
                     sw128_desc(k_own + kk * 16 * 128, kBlockN * 128, 1024), kk > 0 ? 1 : 0);
    }
    wgmma_commit();
    wgmma_wait<1>();  // dV / dK done: this warp no longer reads the stage
    __syncwarp();
    if (lane == 0) mbar_arrive(empty_bar(stage));
    wgmma_wait<0>();
    bwd_add_dq<kD>(p, acc, b, t0, q_comp(head, wg), 0, wq, g, c2);
  }

  // ---- epilogue: dK1, dK2 (scaled) and dV of this warpgroup's kv rows < kv_len
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int kr = kv_off + wq * 16 + g + h * 8;
    if (kr < kv_rows) {
      const std::int64_t row = kvrow0 + kr;
      bf16* dk1_row = p.dk + row * p.k_stride + k_comp(0) * kD;
      bf16* dk2_row = p.dk + row * p.k_stride + k_comp(1) * kD;
      bf16* dv_row = p.dv + row * p.v_stride + vh * kDV;
#pragma unroll
      for (int i = 0; i < kD / 8; ++i) {
        *reinterpret_cast<std::uint32_t*>(dk1_row + i * 8 + c2) =
            pack_bf16(dk1[4 * i + 2 * h] * p.scale, dk1[4 * i + 2 * h + 1] * p.scale);
        *reinterpret_cast<std::uint32_t*>(dk2_row + i * 8 + c2) =
            pack_bf16(dk2[4 * i + 2 * h] * p.scale, dk2[4 * i + 2 * h + 1] * p.scale);
      }
#pragma unroll
      for (int i = 0; i < kDV / 8; ++i) {
        *reinterpret_cast<std::uint32_t*>(dv_row + i * 8 + c2) =
            pack_bf16(dv[4 * i + 2 * h], dv[4 * i + 2 * h + 1]);
      }
    }
  }
#else
  __trap();  // built only for sm_90a (launch_bwd never selects it elsewhere)
#endif
}

}  // namespace difftx::cuda::attn
