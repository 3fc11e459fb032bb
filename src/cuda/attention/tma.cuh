// Hopper asynchronous-copy vocabulary for the sm_90a attention kernels: shared-memory mbarriers
// (init, expect-tx arrival, plain arrival, parity wait), bulk tensor copies (TMA) of 128B-swizzled
// tiles and plain bulk copies completing on an mbarrier, and named barriers for warpgroup
// scheduling. A TMA box of 64 bf16 columns x R rows with CU_TENSOR_MAP_SWIZZLE_128B lands exactly
// as one column panel of a sw128 tile (wgmma.cuh), so the kernels' descriptors read it unchanged.
//
// Pipeline convention (full / empty barrier per stage, s = use % stages, k = use / stages):
//   consumers wait full[s] with parity k & 1 and arrive on empty[s] when done reading;
//   the producer, before refilling stage s for use u, waits empty[s] with parity ((u - stages) /
//   stages) & 1, i.e. for the release of the previous use of that stage.
#pragma once

#include <cuda.h>

#include <cstdint>

namespace difftx::cuda::attn {

__device__ __forceinline__ void mbar_init(std::uint32_t bar, std::uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// Makes initialized barriers visible to the async proxy (TMA); follow with __syncthreads().
__device__ __forceinline__ void mbar_fence_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// Arrival of the thread that issues the copies: announces `bytes` of transactions.
__device__ __forceinline__ void mbar_expect_tx(std::uint32_t bar, std::uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_arrive(std::uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Blocks until the phase of the given parity has completed.
__device__ __forceinline__ void mbar_wait(std::uint32_t bar, std::uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\n"
      "WAIT_LOOP:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT_LOOP;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

// One box of a 3-d tensor map (columns, rows, batch) -> shared memory, completing on `bar`.
__device__ __forceinline__ void tma_load_3d(std::uint32_t dst, const CUtensorMap* map, int col,
                                            int row, int batch, std::uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, "
      "%3, %4}], [%5];\n" ::"r"(dst),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(col), "r"(row), "r"(batch), "r"(bar)
      : "memory");
}
// Contiguous bytes (multiple of 16, both addresses 16-byte aligned) -> shared memory.
__device__ __forceinline__ void bulk_load(std::uint32_t dst, const void* src, std::uint32_t bytes,
                                          std::uint32_t bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::
          "r"(dst),
      "l"(src), "r"(bytes), "r"(bar)
      : "memory");
}

// Named barriers (id 1..15; 0 is __syncthreads): `threads` counts every participant, waiting
// (sync) or not (arrive).
__device__ __forceinline__ void named_bar_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_bar_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

}  // namespace difftx::cuda::attn
