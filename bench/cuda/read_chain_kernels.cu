// Kernels of bench_read_chain (see read_chain_kernels.h): each thread keeps 8 loads of 16 bytes
// in flight (the decode GEMV's batch), read past L1 as the GEMV reads its weights, and folds them
// into a value stored only if it hits one it practically never does, so no load can be dropped.
#include <cuda_runtime.h>

#include <algorithm>

#include "pdl.cuh"  // the engine's PDL primitives (src/cuda/ops)
#include "read_chain_device.cuh"
#include "read_chain_kernels.h"

namespace difftx::bench {
namespace {

using i64 = std::int64_t;
constexpr int kThreads = kReadThreads;
constexpr int kBatch = 8;

using cuda::launch_pdl;
using cuda::pdl_launch_dependents;
using cuda::pdl_wait;

// A weight chunk of 16 bytes, read past L1 as the decode GEMV reads its weights.
__device__ __forceinline__ uint4 load16(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

// Chunks t, t + T, ..., t + (kBatch - 1) T of a weight of n chunks, from chunk `base` on
// (zeros past the end).
__device__ __forceinline__ void load_batch(const uint4* w, i64 n, i64 base, i64 t, i64 T,
                                           uint4 (&v)[kBatch]) {
#pragma unroll
  for (int u = 0; u < kBatch; ++u) {
    const i64 i = base + t + u * T;
    v[u] = i < n ? load16(w + i) : make_uint4(0, 0, 0, 0);
  }
}

__device__ __forceinline__ unsigned fold(const uint4 (&v)[kBatch], unsigned acc) {
#pragma unroll
  for (int u = 0; u < kBatch; ++u) acc = fold16(v[u], acc);
  return acc;
}

// The rest of a weight after its first batch (already in v): consume a batch, then load the
// next (kAhead: load the next, then consume this one, so a batch is in flight meanwhile).
template <bool kAhead>
__device__ __forceinline__ unsigned stream_rest(const uint4* w, i64 n, i64 t, i64 T,
                                                uint4 (&v)[kBatch], unsigned acc) {
  for (i64 base = 0;; base += kBatch * T) {
    const bool last = base + kBatch * T >= n;
    if constexpr (kAhead) {
      uint4 next[kBatch];
      if (!last) load_batch(w, n, base + kBatch * T, t, T, next);
      acc = fold(v, acc);
      if (last) return acc;
#pragma unroll
      for (int u = 0; u < kBatch; ++u) v[u] = next[u];
    } else {
      acc = fold(v, acc);
      if (last) return acc;
      load_batch(w, n, base + kBatch * T, t, T, v);
    }
  }
}

// One stage of a chain: stream weight w (n chunks; none for a stand-in), after reading the token
// the kernel before wrote; block 0 passes the token on. `sink` is written only if the fold hits a
// value it practically never does, so the loads cannot be dropped.
template <bool kAhead>
__global__ void __launch_bounds__(kThreads, 2)
    stage_kernel(const uint4* w, i64 n, const unsigned* token_in, unsigned* token_out,
                 unsigned* sink, bool early) {
  if (early) pdl_launch_dependents();
  const i64 t = i64(blockIdx.x) * blockDim.x + threadIdx.x, T = i64(gridDim.x) * blockDim.x;
  uint4 v[kBatch];
  load_batch(w, n, 0, t, T, v);
  pdl_wait();
  if (!early) pdl_launch_dependents();
  unsigned acc = *reinterpret_cast<const volatile unsigned*>(token_in);
  if (n > 0) acc = stream_rest<kAhead>(w, n, t, T, v, acc);
  if (acc == 0x9e3779b9u) sink[t] = acc;
  if (t == 0) *token_out = *token_in + 1;
}

// All stages in one kernel: before the barrier that ends stage s, each thread loads its first
// batch of stage s + 1 (it depends on nothing), then the block arrives and waits for the others.
// `arrivals` is zeroed before each launch.
template <bool kAhead>
__global__ void __launch_bounds__(kThreads, 2)
    persistent_kernel(const ReadStage* stages, int count, unsigned* arrivals, unsigned* sink) {
  const i64 t = i64(blockIdx.x) * blockDim.x + threadIdx.x, T = i64(gridDim.x) * blockDim.x;
  uint4 v[kBatch];
  unsigned acc = 0;
  load_batch(static_cast<const uint4*>(stages[0].w), stages[0].n, 0, t, T, v);
  for (int s = 0; s < count; ++s) {
    if (stages[s].n > 0)
      acc = stream_rest<kAhead>(static_cast<const uint4*>(stages[s].w), stages[s].n, t, T, v, acc);
    if (s + 1 == count) break;
    load_batch(static_cast<const uint4*>(stages[s + 1].w), stages[s + 1].n, 0, t, T, v);
    __syncthreads();
    if (threadIdx.x == 0) {
      __threadfence();
      atomicAdd(arrivals, 1u);
      const unsigned target = (s + 1) * gridDim.x;
      while (load_acquire(arrivals) < target) {
      }
    }
    __syncthreads();
  }
  if (acc == 0x9e3779b9u) sink[t] = acc;
}

}  // namespace

cudaError_t launch_read_stage(const ReadStage& s, int cap, bool pdl, bool ahead, bool early,
                              std::size_t smem, cudaStream_t stream, const unsigned* token_in,
                              unsigned* token_out, unsigned* sink) {
  const i64 per_block = i64(kThreads) * kBatch;
  const i64 want = s.n > 0 ? (s.n + per_block - 1) / per_block : cap;
  const dim3 grid(unsigned(std::clamp<i64>(want, 1, cap)));
  return launch_pdl(ahead ? stage_kernel<true> : stage_kernel<false>, grid, dim3(kThreads), smem,
                    stream, pdl, static_cast<const uint4*>(s.w), s.n, token_in, token_out, sink,
                    early);
}

cudaError_t launch_read_persistent(const ReadStage* stages, int count, unsigned blocks, bool ahead,
                                   cudaStream_t stream, unsigned* arrivals, unsigned* sink) {
  return launch_cooperative(ahead ? persistent_kernel<true> : persistent_kernel<false>, blocks,
                            kThreads, 0, stream, stages, count, arrivals, sink);
}

cudaError_t allow_read_stage_smem(std::size_t bytes) {
  for (const auto kernel : {stage_kernel<false>, stage_kernel<true>}) {
    const cudaError_t status =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
    if (status != cudaSuccess) return status;
  }
  return cudaSuccess;
}

int read_persistent_blocks_per_sm(bool ahead) {
  int n = 0;
  const auto kernel = ahead ? persistent_kernel<true> : persistent_kernel<false>;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kThreads, 0) != cudaSuccess)
    return 0;
  return n;
}

}  // namespace difftx::bench
