// Backward flash-attention kernel for Hopper (sm_90a): the algorithm of bwd_kernel.cuh (one block
// per kv tile, dK/dV in registers, recomputed scores, dQ by fp32 atomics), with all five products
// on warpgroup MMAs over 128B-swizzled shared tiles.
//
// One block = 2 warpgroups (256 threads), query tiles of 64 rows:
//   DIFF V1 (used at d = 128; d = 64 runs bwd_kernel_sm90_split.cuh): warpgroup m owns map m
//     for the tile's 64 kv rows: S_m^T = K_m Q_m^T,
//     dP^T = V dO^T (the same matrix for both maps), dS_m^T = P_m^T (c_m dP^T - D_m) with c_1 = 1,
//     c_2 = -lambda, dK_m += dS_m^T Q_m, dQ_m += dS_m K_m, and the value columns
//     [m d, (m+1) d) of dV += (P1 - lambda P2)^T dO: the two warpgroups swap their P^T tiles
//     (bf16) through shared memory, so each forms P1 - lambda P2 for its own dV columns.
//   softmax: warpgroup w owns kv rows [64 w, 64 w + 64) of a 128-row tile (dK, dV whole rows).
// Transposed products take their operands MN-major from the same swizzled tiles (no copies):
// S^T and dP^T read K/V and Q/dO K-major; dK/dV read Q/dO MN-major with the A operand (dS^T, P^T)
// in registers; dQ reads dS^T (staged in shared memory) and K MN-major.
// Loads: K/V once and the per-iteration Q, dO tiles (TMA) and lse / D rows (bulk copies) through
// a two-stage mbarrier pipeline fed by one thread (the first of warpgroup 1); a stage is released
// (one arrival per warp) as soon as the products reading it are done, before the dQ product and
// its atomics, so the next tile streams in under them. Barriers per iteration: before the staging
// writes (the previous iteration's readers of the staging tiles are done) and after them; for
// softmax both are warpgroup-local, for DIFF block-wide (the P^T exchange).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "bwd_pipeline_sm90.cuh"
#include "mma.cuh"
#include "params.cuh"
#include "tma.cuh"
#include "wgmma.cuh"

namespace difftx::cuda::attn {

template <int kD_, bool kDiff_>
struct BwdSm90Traits {
  static constexpr int kD = kD_;
  static constexpr bool kDiff = kDiff_;
  static constexpr int kMaps = kDiff ? 2 : 1;
  static constexpr int kDV = kDiff ? 2 * kD : kD;
  static constexpr int kThreads = 256;
  static constexpr int kBlockN = kDiff ? 64 : 128;  // kv rows per block
  static constexpr int kBlockM = 64;                // query rows per iteration
  static constexpr int kKTileBytes = kBlockN * kD * 2;
  static constexpr int kKBytes = kMaps * kKTileBytes;
  static constexpr int kVBytes = kBlockN * kDV * 2;
  static constexpr int kQTileBytes = kBlockM * kD * 2;
  static constexpr int kdOBytes = kBlockM * kDV * 2;
  static constexpr int kRowBytes = 2 * kMaps * kBlockM * 4;  // lse and D rows of one stage
  static constexpr int kStageBytes = kMaps * kQTileBytes + kdOBytes;
  static constexpr int kdSBytes = 128 * 64 * 2;  // dS^T of both warpgroups: [128 kv][64 q]
  static constexpr int kPcBytes = kDiff ? 2 * 64 * 64 * 2 : 0;  // P^T of both maps, [64][64] sw128
  static constexpr int kOffV = kKBytes;
  static constexpr int kOffStage = kOffV + kVBytes;
  static constexpr int kOffdS = kOffStage + 2 * kStageBytes;
  static constexpr int kOffPc = kOffdS + kdSBytes;
  static constexpr int kOffRow = kOffPc + kPcBytes;  // [stage][lse, delta][map][row] f32
  static constexpr int kOffBar = kOffRow + 2 * kRowBytes;
  static constexpr int kSmemBytes = kOffBar + 5 * 8;  // full[2], empty[2], kv
  static_assert(kSmemBytes <= 232448, "shared memory per block exceeds 227 KB");
  static_assert(kKBytes % 1024 == 0 && kVBytes % 1024 == 0 && kStageBytes % 1024 == 0 &&
                    kPcBytes % 16 == 0,
                "tiles must stay 1024-byte aligned");
};

template <class Tr>
__global__ void __launch_bounds__(Tr::kThreads, 1)
    attention_bwd_sm90_kernel(const __grid_constant__ BwdParams p,
                              const __grid_constant__ TileMaps maps) {
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int kD = Tr::kD, kDV = Tr::kDV, kMaps = Tr::kMaps, kBlockM = Tr::kBlockM;
  constexpr int kBlockN = Tr::kBlockN;

  // 1024-byte aligned tiles for the 128B swizzle (dynamic shared memory starts aligned when the
  // kernel has no static shared memory; checked)
  extern __shared__ __align__(1024) unsigned char smem[];
  if ((smem_addr(smem) & 1023u) != 0) __trap();
  unsigned char* sK = smem;                      // kMaps sw128 tiles [kBlockN][kD]
  unsigned char* sV = smem + Tr::kOffV;          // sw128 [kBlockN][kDV]
  unsigned char* sStage = smem + Tr::kOffStage;  // 2 x { Q tiles [kMaps][64][kD], dO [64][kDV] }
  unsigned char* sdS = smem + Tr::kOffdS;  // sw128 [128][64]: rows 64 wg.. = dS^T of warpgroup wg
  unsigned char* sPx = smem + Tr::kOffPc;  // DIFF: P^T of map m at m * 8192, sw128 [64][64]
  float* sRow = reinterpret_cast<float*>(smem + Tr::kOffRow);
  const std::uint32_t bar0 = smem_addr(smem + Tr::kOffBar);
  auto full_bar = [&](int st) { return bar0 + 8u * st; };
  auto empty_bar = [&](int st) { return bar0 + 8u * (2 + st); };
  const std::uint32_t kv_bar = bar0 + 32u;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wg = warp >> 2, wq = warp & 3;
  const int map = kMaps == 2 ? wg : 0;
  const int kv_off = kMaps == 2 ? 0 : 64 * wg;  // this warpgroup's first row in the K/V tiles
  const int g = lane >> 2, c2 = (lane & 3) * 2;
  // grid (kv tiles, kv groups, batch): blocks running together add into one head's dQ rows,
  // which stay in L2; tile 0 sees the most query tiles and is scheduled first
  const int group = blockIdx.y, b = blockIdx.z;
  const int n0 = static_cast<int>(blockIdx.x) * kBlockN;
  const int S = p.kv_len;
  const int kv_rows = min(kBlockN, S - n0);
  auto k_comp = [&](int m) { return kMaps == 2 ? 2 * group + m : group; };
  auto q_comp = [&](int head, int m) { return kMaps == 2 ? 2 * head + m : head; };
  const int vh = group;

  const BwdWorkList<kBlockM> work(p, group, n0);
  const int total = work.total;

  const std::int64_t kvrow0 = static_cast<std::int64_t>(b) * S + n0;
  auto load_stage = [&](int it, int stage) {
    int head, t0;
    work.item(it, head, t0);
    bwd_load_stage<kMaps, kD, kDV, kBlockM>(p, maps, sStage + stage * Tr::kStageBytes,
                                            sRow + stage * 2 * kMaps * kBlockM, head, t0, b,
                                            full_bar(stage));
  };
  if (tid == 0) bwd_init_barriers(bar0);
  __syncthreads();
  const bool producer = tid == 128;
  if (producer) {
    bwd_load_kv<kMaps, kD, kDV, kBlockN>(maps, sK, sV, k_comp(0), vh, n0, b, kv_bar);
    if (total > 0) load_stage(0, 0);
  }
  __syncwarp();

  float dk[kD / 2], dv[kD / 2];
#pragma unroll
  for (int i = 0; i < kD / 2; ++i) dk[i] = dv[i] = 0.f;
  const float lam = kMaps == 2 ? *p.lambda : 0.f;
  const float dp_coef = map == 1 ? -lam : 1.f;
  const std::uint32_t k_addr = smem_addr(sK + map * Tr::kKTileBytes);
  const std::uint32_t v_addr = smem_addr(sV);
  const std::uint32_t ds_addr = smem_addr(sdS) + wg * 64 * 128;
  unsigned char* sdS_wg = sdS + wg * 64 * 128;

  mbar_wait(kv_bar, 0);
  // barrier ids: 1 = block-wide (DIFF), 1 + wg = this warpgroup (softmax)
  const int staging_bar = kMaps == 2 ? 1 : 1 + wg;
  const int staging_threads = kMaps == 2 ? 256 : 128;
  for (int it = 0; it < total; ++it) {
    const int stage = it & 1;
    bwd_next_stage(it, total, producer, bar0, load_stage);

    int head, t0;
    work.item(it, head, t0);
    const std::uint32_t q_addr =
        smem_addr(sStage + stage * Tr::kStageBytes + map * Tr::kQTileBytes);
    const std::uint32_t do_addr =
        smem_addr(sStage + stage * Tr::kStageBytes + kMaps * Tr::kQTileBytes);
    const float* sLse = sRow + ((stage * 2 + 0) * kMaps + map) * kBlockM;
    const float* sDel = sRow + ((stage * 2 + 1) * kMaps + map) * kBlockM;

    // S^T = K_m Q_m^T and dP^T = V dO^T (64 kv rows x 64 queries), all operands K-major
    float st[32], dp[32];
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kD / 16; ++kk) {
      const std::uint32_t koff = (kk & 3) << 5;
      wgmma_ss<0, 0>(
          st, sw128_desc(k_addr + (kk >> 2) * kBlockN * 128 + kv_off * 128 + koff, 16, 1024),
          sw128_desc(q_addr + (kk >> 2) * kBlockM * 128 + koff, 16, 1024), kk > 0 ? 1 : 0);
    }
#pragma unroll
    for (int kk = 0; kk < kDV / 16; ++kk) {
      const std::uint32_t koff = (kk & 3) << 5;
      wgmma_ss<0, 0>(
          dp, sw128_desc(v_addr + (kk >> 2) * kBlockN * 128 + kv_off * 128 + koff, 16, 1024),
          sw128_desc(do_addr + (kk >> 2) * kBlockM * 128 + koff, 16, 1024), kk > 0 ? 1 : 0);
    }
    wgmma_commit();
    wgmma_wait<0>();

    // P^T, dS^T; d[4i + j]: kv row kr = 16 wq + g + 8 (j >> 1), query 8 i + c2 + (j & 1)
    const bool need_mask = n0 + kBlockN > S || n0 + kBlockN - 1 > p.q_offset + t0;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const float2 lse2 = *reinterpret_cast<const float2*>(sLse + i * 8 + c2);
      const float2 del2 = *reinterpret_cast<const float2*>(sDel + i * 8 + c2);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int tq = i * 8 + c2 + (j & 1);
        const int key = n0 + kv_off + wq * 16 + g + (j >> 1) * 8;
        float pv = fast_exp2(fmaf(st[4 * i + j], p.scale_log2, -((j & 1) ? lse2.y : lse2.x)));
        if (need_mask && (key >= S || key > p.q_offset + t0 + tq)) pv = 0.f;
        st[4 * i + j] = pv;
        dp[4 * i + j] = pv * (dp_coef * dp[4 * i + j] - ((j & 1) ? del2.y : del2.x));
      }
    }
    // stage dS^T (bf16, sw128 [kv][query]) for dQ; DIFF: also this map's P^T for the other map.
    // First wait until iteration it - 1's readers of these tiles (dQ products; DIFF: the other
    // warpgroup's combine) are done.
    if (it > 0) named_bar_sync(staging_bar, staging_threads);
#pragma unroll
    for (int i = 0; i < 8; ++i) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int kr = wq * 16 + g + h * 8;
        const int off = kr * 128 + ((i ^ (kr & 7)) << 4) + c2 * 2;
        *reinterpret_cast<std::uint32_t*>(sdS_wg + off) =
            pack_bf16(dp[4 * i + 2 * h], dp[4 * i + 2 * h + 1]);
        if constexpr (kMaps == 2) {
          *reinterpret_cast<std::uint32_t*>(sPx + map * 8192 + off) =
              pack_bf16(st[4 * i + 2 * h], st[4 * i + 2 * h + 1]);
        }
      }
    }
    fence_proxy_async();
    named_bar_sync(staging_bar, staging_threads);  // dS^T tiles (and both P^T tiles) complete

    // DIFF: Pc = P1 - lambda P2, own map in fp32, the other map's from shared memory (bf16)
    if constexpr (kMaps == 2) {
      const float own = map == 0 ? 1.f : -lam, other = map == 0 ? -lam : 1.f;
#pragma unroll
      for (int i = 0; i < 8; ++i) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int kr = wq * 16 + g + h * 8;
          const float2 x = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(
              sPx + (1 - map) * 8192 + kr * 128 + ((i ^ (kr & 7)) << 4) + c2 * 2));
          st[4 * i + 2 * h] = own * st[4 * i + 2 * h] + other * x.x;
          st[4 * i + 2 * h + 1] = own * st[4 * i + 2 * h + 1] + other * x.y;
        }
      }
    }
    std::uint32_t pa[4][4], dsa[4][4];
#pragma unroll
    for (int kt = 0; kt < 4; ++kt) {
      pa[kt][0] = pack_bf16(st[8 * kt + 0], st[8 * kt + 1]);
      pa[kt][1] = pack_bf16(st[8 * kt + 2], st[8 * kt + 3]);
      pa[kt][2] = pack_bf16(st[8 * kt + 4], st[8 * kt + 5]);
      pa[kt][3] = pack_bf16(st[8 * kt + 6], st[8 * kt + 7]);
      dsa[kt][0] = pack_bf16(dp[8 * kt + 0], dp[8 * kt + 1]);
      dsa[kt][1] = pack_bf16(dp[8 * kt + 2], dp[8 * kt + 3]);
      dsa[kt][2] = pack_bf16(dp[8 * kt + 4], dp[8 * kt + 5]);
      dsa[kt][3] = pack_bf16(dp[8 * kt + 6], dp[8 * kt + 7]);
    }

    // dK_m += dS_m^T Q_m and dV[:, map d : map d + d] += Pc^T dO (Q, dO MN-major), then
    // dQ_m = dS_m K_m in 64-column chunks, added to the fp32 accumulator
    const int comp = q_comp(head, map);
#pragma unroll
    for (int ch = 0; ch < kD / 64; ++ch) {
      float acc[32];
      wgmma_fence();
      if (ch == 0) {
#pragma unroll
        for (int kt = 0; kt < 4; ++kt) {
          wgmma_rs<1>(dk, dsa[kt], sw128_desc(q_addr + kt * 16 * 128, kBlockM * 128, 1024), 1);
        }
#pragma unroll
        for (int kt = 0; kt < 4; ++kt) {
          wgmma_rs<1>(dv, pa[kt],
                      sw128_desc(do_addr + map * (kD / 64) * kBlockM * 128 + kt * 16 * 128,
                                 kBlockM * 128, 1024),
                      1);
        }
        wgmma_commit();
      }
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        wgmma_ss<1, 1>(
            acc, sw128_desc(ds_addr + kk * 16 * 128, 128 * 128, 1024),
            sw128_desc(k_addr + ch * kBlockN * 128 + (kv_off + kk * 16) * 128, kBlockN * 128, 1024),
            kk > 0 ? 1 : 0);
      }
      wgmma_commit();
      if (ch == 0) {
        wgmma_wait<1>();  // dK / dV done: this warp no longer reads the stage's Q / dO
        __syncwarp();
        if (lane == 0) mbar_arrive(empty_bar(stage));
      }
      wgmma_wait<0>();
      bwd_add_dq<kD>(p, acc, b, t0, comp, ch * 64, wq, g, c2);
    }
  }

  // ---- epilogue: dK (scaled) and this warpgroup's dV columns, rows < kv_len
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int kr = kv_off + wq * 16 + g + h * 8;
    if (kr < kv_rows) {
      const std::int64_t row = kvrow0 + kr;
      bf16* dk_row = p.dk + row * p.k_stride + k_comp(map) * kD;
      bf16* dv_row = p.dv + row * p.v_stride + vh * kDV + map * kD;
#pragma unroll
      for (int i = 0; i < kD / 8; ++i) {
        *reinterpret_cast<std::uint32_t*>(dk_row + i * 8 + c2) =
            pack_bf16(dk[4 * i + 2 * h] * p.scale, dk[4 * i + 2 * h + 1] * p.scale);
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
