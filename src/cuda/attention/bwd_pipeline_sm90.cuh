// The pipeline side of the sm_90a backward kernels (bwd_kernel_sm90.cuh,
// bwd_kernel_sm90_split.cuh): a block's list of work items, its barriers, the block's K/V tiles
// and one work item's stage (Q tiles and dO by TMA, the lse and D rows by bulk copies).
// Shared-memory layouts (sw128 tiles, wgmma.cuh):
//   K: kMaps tiles [kRows][kD]; V: [kRows][kDV];
//   stage: kMaps Q tiles [kBlockM][kD], then dO [kBlockM][kDV]; rows: [lse, D][map][kBlockM] f32.
#pragma once

#include <cstdint>

#include "mma.cuh"
#include "params.cuh"
#include "tma.cuh"
#include "tma_map.h"

namespace difftx::cuda::attn {

// The work items of the block that owns kv rows [n0, n0 + block rows) of kv group `group`: every
// query head of the group (n_rep of them) times every query tile of kBlockM rows that sees a key
// of the block (causal: from the tile holding query n0 - q_offset on).
template <int kBlockM>
struct BwdWorkList {
  int head0, m_begin, m_count, total;
  __device__ __forceinline__ BwdWorkList(const BwdParams& p, int group, int n0) {
    head0 = group * p.n_rep;
    m_begin = max(0, n0 - p.q_offset) / kBlockM;
    m_count = max(0, (p.q_len + kBlockM - 1) / kBlockM - m_begin);
    total = p.n_rep * m_count;
  }
  // item it: query head and first query row
  __device__ __forceinline__ void item(int it, int& head, int& t0) const {
    head = head0 + it / m_count;
    t0 = (m_begin + it % m_count) * kBlockM;
  }
};

// Barriers at bar0: full[2] (one arrival: the issuing thread), empty[2] (one per warp of the
// 8), then the K/V barrier. Call from one thread, then __syncthreads().
__device__ __forceinline__ void bwd_init_barriers(std::uint32_t bar0) {
  mbar_init(bar0, 1);
  mbar_init(bar0 + 8, 1);
  mbar_init(bar0 + 16, 8);
  mbar_init(bar0 + 24, 8);
  mbar_init(bar0 + 32, 1);
  mbar_fence_init();
}

// K components k_comp0 .. k_comp0 + kMaps - 1 and V head vh, rows [n0, n0 + kRows) of batch b.
template <int kMaps, int kD, int kDV, int kRows>
__device__ __forceinline__ void bwd_load_kv(const TileMaps& maps, unsigned char* sK,
                                            unsigned char* sV, int k_comp0, int vh, int n0, int b,
                                            std::uint32_t bar) {
  mbar_expect_tx(bar, kMaps * kRows * kD * 2 + kRows * kDV * 2);
#pragma unroll
  for (int m = 0; m < kMaps; ++m) {
#pragma unroll
    for (int pn = 0; pn < kD / 64; ++pn) {
      tma_load_3d(smem_addr(sK + m * kRows * kD * 2 + pn * kRows * 128), &maps.k,
                  (k_comp0 + m) * kD + 64 * pn, n0, b, bar);
    }
  }
#pragma unroll
  for (int pn = 0; pn < kDV / 64; ++pn) {
    tma_load_3d(smem_addr(sV + pn * kRows * 128), &maps.v, vh * kDV + 64 * pn, n0, b, bar);
  }
}

// Work item (head, query rows [t0, t0 + kBlockM)) of batch b: Q components of the head (2 head,
// 2 head + 1 for DIFF V1), its dO, and its lse / D rows.
template <int kMaps, int kD, int kDV, int kBlockM>
__device__ __forceinline__ void bwd_load_stage(const BwdParams& p, const TileMaps& maps,
                                               unsigned char* sQ, float* rows, int head, int t0,
                                               int b, std::uint32_t bar) {
  constexpr int kQTileBytes = kBlockM * kD * 2;
  unsigned char* sdO = sQ + kMaps * kQTileBytes;
  mbar_expect_tx(bar, kMaps * kQTileBytes + kBlockM * kDV * 2 + 2 * kMaps * kBlockM * 4);
  auto q_comp = [&](int m) { return kMaps == 2 ? 2 * head + m : head; };
#pragma unroll
  for (int m = 0; m < kMaps; ++m) {
#pragma unroll
    for (int pn = 0; pn < kD / 64; ++pn) {
      tma_load_3d(smem_addr(sQ + m * kQTileBytes + pn * kBlockM * 128), &maps.q,
                  q_comp(m) * kD + 64 * pn, t0, b, bar);
    }
  }
#pragma unroll
  for (int pn = 0; pn < kDV / 64; ++pn) {
    tma_load_3d(smem_addr(sdO + pn * kBlockM * 128), &maps.dout, head * kDV + 64 * pn, t0, b, bar);
  }
#pragma unroll
  for (int which = 0; which < 2; ++which) {
#pragma unroll
    for (int m = 0; m < kMaps; ++m) {
      const float* src = (which == 0 ? p.lse_log2 : p.delta) +
                         (static_cast<std::int64_t>(b) * p.q_comps + q_comp(m)) * p.t_pad + t0;
      bulk_load(smem_addr(rows + (which * kMaps + m) * kBlockM), src, kBlockM * 4, bar);
    }
  }
}

// Adds one warpgroup's 64 x 64 fp32 dQ product (wgmma accumulator layout; this warp's rows
// 16 wq + g, + 8) into dq_accum rows t0.. of query component `comp`, columns col0..col0 + 63.
template <int kD>
__device__ __forceinline__ void bwd_add_dq(const BwdParams& p, const float (&acc)[32], int b,
                                           int t0, int comp, int col0, int wq, int g, int c2) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int t = t0 + wq * 16 + g + h * 8;
    if (t < p.q_len) {
      float* dst = p.dq_accum +
                   ((static_cast<std::int64_t>(b) * p.q_len + t) * p.q_comps + comp) * kD + col0 +
                   c2;
#pragma unroll
      for (int i = 0; i < 8; ++i)
        atomic_add_f2(dst + i * 8, acc[4 * i + 2 * h], acc[4 * i + 2 * h + 1]);
    }
  }
}

// Top of main-loop iteration `it` (two stages): the issuing thread refills the other stage with
// item it + 1 once both warpgroups released its previous item (it - 1); then every thread waits
// until item it has landed.
template <class LoadStage>
__device__ __forceinline__ void bwd_next_stage(int it, int total, bool producer, std::uint32_t bar0,
                                               LoadStage&& load_stage) {
  const int stage = it & 1;
  if (producer && it + 1 < total) {
    if (it >= 1) mbar_wait(bar0 + 8u * (2 + (stage ^ 1)), ((it - 1) >> 1) & 1);
    load_stage(it + 1, stage ^ 1);
  }
  __syncwarp();
  mbar_wait(bar0 + 8u * stage, (it >> 1) & 1);
}

}  // namespace difftx::cuda::attn
