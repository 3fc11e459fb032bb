// bench_read_chain's "ring" and "ring-lsu" modes (read_chain_kernels.h): one persistent kernel in
// which weight streaming is decoupled from the step's dependencies, as a decode megakernel would
// do it.
//
// Each block (one per multiprocessor) has a producer warp and kRingConsumerWarps consumer warps.
// The producer walks the block's slice of every stage's weight, in step order, and streams it into
// a ring of shared-memory pieces with Hopper bulk copies completing on mbarriers; it waits only
// for a free piece, never for a stage's dependency, so the reads run ahead of the chain by up to
// the ring's size (132 x 192 KB on an H200: about two 125M layers). The consumers follow the
// chain: before stage s they wait until every block has finished stage s - 1 (an arrival counter
// per stage) and read the 4 KB activation vector the blocks wrote in stage s - 1 (the round trip
// a GEMV's input takes), then fold their slice's pieces, write their part of stage s's vector,
// and arrive. If the stream and the chain overlapped, a step would cost about max(the reads at
// full rate, the chain's latency); with --empty only the chain remains. Measured on an H200
// (bench/engine/results/2026-12-03-h200) a step cost about their sum instead, in both modes.
#include <cuda_runtime.h>

#include <cstdint>

#include "difftx/cuda/common/async_copy.cuh"  // smem_addr
#include "read_chain_device.cuh"
#include "read_chain_kernels.h"
#include "tma.cuh"  // mbarriers and bulk copies (src/cuda/attention)

namespace difftx::bench {
namespace {

using i64 = std::int64_t;
namespace attn = difftx::cuda::attn;

constexpr int kConsumerThreads = kRingConsumerWarps * 32;
constexpr int kRingThreads = kConsumerThreads + 32;
constexpr int kMaxSlots = 32;

// Chunks (16 bytes) [begin, end) of a stage of n chunks that block b of g reads.
__device__ __forceinline__ void block_slice(i64 n, int b, int g, i64& begin, i64& end) {
  begin = n * b / g;
  end = n * (b + 1) / g;
}

// The consumers' side of a stage boundary, shared by both kernels; `sync` is a barrier of the
// block's consumer threads. Before stage s > 0: thread 0 waits until every block has arrived on
// stage s - 1, then each thread folds its share of the vector stage s - 1 wrote (read from L2).
template <typename Sync>
__device__ __forceinline__ unsigned enter_stage(int s, const unsigned* arrivals,
                                                const std::uint32_t* activations, int g, Sync sync,
                                                unsigned acc) {
  if (threadIdx.x == 0) {
    while (load_acquire(arrivals + s - 1) < unsigned(g)) {
    }
  }
  sync();
  const uint4* in =
      reinterpret_cast<const uint4*>(activations + (s - 1) % 2 * kRingActivationWords);
  for (int i = threadIdx.x; i < kRingActivationWords / 4; i += kConsumerThreads)
    acc = fold16(__ldcg(in + i), acc);
  return acc;
}

// After stage s: block b's part of the vector stage s writes, then the block's arrival.
template <typename Sync>
__device__ __forceinline__ void leave_stage(int s, unsigned* arrivals, std::uint32_t* activations,
                                            int b, int g, Sync sync, unsigned acc) {
  constexpr int kWords = kRingActivationWords;
  std::uint32_t* out = activations + s % 2 * kWords;
  for (int i = kWords * b / g + int(threadIdx.x); i < kWords * (b + 1) / g; i += kConsumerThreads)
    out[i] = acc + i;
  sync();
  if (threadIdx.x == 0) {
    __threadfence();
    atomicAdd(arrivals + s, 1u);
  }
}

__global__ void __launch_bounds__(kRingThreads, 1)
    ring_kernel(const ReadStage* stages, int count, int slots, int piece_chunks, unsigned* arrivals,
                std::uint32_t* activations, unsigned* sink) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int kConsumerBarrier = 1;             // named barrier of the consumer warps
  extern __shared__ __align__(128) uint4 ring[];  // (slots, piece_chunks)
  __shared__ __align__(8) std::uint64_t full[kMaxSlots], empty[kMaxSlots];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int b = blockIdx.x, g = gridDim.x;
  if (tid == 0) {
    for (int i = 0; i < slots; ++i) {
      attn::mbar_init(cuda::smem_addr(&full[i]), 1);
      attn::mbar_init(cuda::smem_addr(&empty[i]), kRingConsumerWarps);
    }
    attn::mbar_fence_init();
  }
  __syncthreads();

  if (warp == kRingConsumerWarps) {  // the producer
    if (lane != 0) return;
    i64 use = 0;
    for (int s = 0; s < count; ++s) {
      i64 begin, end;
      block_slice(stages[s].n, b, g, begin, end);
      const char* w = static_cast<const char*>(stages[s].w);
      for (i64 c = begin; c < end; c += piece_chunks, ++use) {
        const int slot = int(use % slots);
        if (use >= slots)
          attn::mbar_wait(cuda::smem_addr(&empty[slot]), unsigned((use / slots - 1) & 1));
        const unsigned bytes = unsigned(min(i64(piece_chunks), end - c) * 16);
        attn::mbar_expect_tx(cuda::smem_addr(&full[slot]), bytes);
        attn::bulk_load(cuda::smem_addr(ring + i64(slot) * piece_chunks), w + c * 16, bytes,
                        cuda::smem_addr(&full[slot]));
      }
    }
    return;
  }

  // The consumers.
  const auto consumers_sync = [] { attn::named_bar_sync(kConsumerBarrier, kConsumerThreads); };
  unsigned acc = 0;
  i64 use = 0;
  for (int s = 0; s < count; ++s) {
    if (s > 0) acc = enter_stage(s, arrivals, activations, g, consumers_sync, acc);
    i64 begin, end;
    block_slice(stages[s].n, b, g, begin, end);
    for (i64 c = begin; c < end; c += piece_chunks, ++use) {
      const int slot = int(use % slots);
      attn::mbar_wait(cuda::smem_addr(&full[slot]), unsigned((use / slots) & 1));
      const int n = int(min(i64(piece_chunks), end - c));
      const uint4* piece = ring + i64(slot) * piece_chunks;
      for (int i = tid; i < n; i += kConsumerThreads) acc = fold16(piece[i], acc);
      __syncwarp();
      if (lane == 0) attn::mbar_arrive(cuda::smem_addr(&empty[slot]));
    }
    leave_stage(s, arrivals, activations, b, g, consumers_sync, acc);
  }
  if (acc == 0x9e3779b9u) sink[i64(b) * kRingThreads + tid] = acc;
#endif
}

// The same with the loads issued by the consumers themselves (cp.async, 16 bytes each, through
// the load units rather than the bulk-copy engine): every thread copies its own chunks of each
// piece (chunk i of a piece belongs to thread i mod the block), kLsuLag pieces ahead, across stage
// boundaries and before the dependency waits, and folds only its own chunks, so a piece needs no
// barrier: cp.async groups complete in order, one group per piece.
constexpr int kLsuLag = 12;

__device__ __forceinline__ bool next_piece(const ReadStage* stages, int count, int b, int g,
                                           int piece_chunks, int& s, i64& c, i64& end) {
  while (c >= end) {
    if (++s >= count) return false;
    block_slice(stages[s].n, b, g, c, end);
  }
  return true;
}

__global__ void __launch_bounds__(kConsumerThreads, 1)
    ring_lsu_kernel(const ReadStage* stages, int count, int piece_chunks, unsigned* arrivals,
                    std::uint32_t* activations, unsigned* sink) {
  extern __shared__ __align__(128) uint4 ring[];  // (kLsuLag, piece_chunks)
  const int tid = threadIdx.x, b = blockIdx.x, g = gridDim.x;
  // The issuing cursor: stage is, chunk ic of its slice [.., iend), piece number iu.
  int is = 0;
  i64 ic, iend, iu = 0;
  block_slice(stages[0].n, b, g, ic, iend);
  auto issue_one = [&] {
    if (next_piece(stages, count, b, g, piece_chunks, is, ic, iend)) {
      const int n = int(min(i64(piece_chunks), iend - ic));
      uint4* dst = ring + (iu % kLsuLag) * piece_chunks;
      const uint4* src = static_cast<const uint4*>(stages[is].w) + ic;
      for (int i = tid; i < n; i += kConsumerThreads) cuda::cp_async_16(dst + i, src + i, 16);
      ic += piece_chunks;
      ++iu;
    }
    cuda::cp_async_commit();  // an empty group past the end keeps one group per piece
  };
  for (int k = 0; k < kLsuLag; ++k) issue_one();

  const auto block_sync = [] { __syncthreads(); };
  unsigned acc = 0;
  i64 use = 0;
  for (int s = 0; s < count; ++s) {
    if (s > 0) acc = enter_stage(s, arrivals, activations, g, block_sync, acc);
    i64 begin, end;
    block_slice(stages[s].n, b, g, begin, end);
    for (i64 c = begin; c < end; c += piece_chunks, ++use) {
      cuda::cp_async_wait<kLsuLag - 1>();  // this thread's copies of piece `use` have landed
      const int n = int(min(i64(piece_chunks), end - c));
      const uint4* piece = ring + (use % kLsuLag) * piece_chunks;
      for (int i = tid; i < n; i += kConsumerThreads) acc = fold16(piece[i], acc);
      issue_one();  // into the slot just read (by this thread only)
    }
    leave_stage(s, arrivals, activations, b, g, block_sync, acc);
  }
  cuda::cp_async_wait<0>();
  if (acc == 0x9e3779b9u) sink[i64(b) * kRingThreads + tid] = acc;
}

}  // namespace

cudaError_t allow_read_ring_lsu_smem(std::size_t bytes) {
  return cudaFuncSetAttribute(ring_lsu_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              int(bytes));
}

int read_ring_lsu_pieces() {
  return kLsuLag;
}

cudaError_t launch_read_ring_lsu(const ReadStage* stages, int count, unsigned blocks,
                                 int piece_bytes, cudaStream_t stream, unsigned* arrivals,
                                 std::uint32_t* activations, unsigned* sink) {
  if (piece_bytes < 16 || piece_bytes % 16 != 0) return cudaErrorInvalidValue;
  return launch_cooperative(ring_lsu_kernel, blocks, kConsumerThreads,
                            std::size_t(kLsuLag) * std::size_t(piece_bytes), stream, stages, count,
                            piece_bytes / 16, arrivals, activations, sink);
}

cudaError_t allow_read_ring_smem(std::size_t bytes) {
  return cudaFuncSetAttribute(ring_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
}

cudaError_t launch_read_ring(const ReadStage* stages, int count, unsigned blocks, int slots,
                             int piece_bytes, cudaStream_t stream, unsigned* arrivals,
                             std::uint32_t* activations, unsigned* sink) {
  if (slots < 2 || slots > kMaxSlots || piece_bytes < 16 || piece_bytes % 16 != 0)
    return cudaErrorInvalidValue;
  // cooperative: every block resident, since the consumers spin on each other
  return launch_cooperative(ring_kernel, blocks, kRingThreads,
                            std::size_t(slots) * std::size_t(piece_bytes), stream, stages, count,
                            slots, piece_bytes / 16, arrivals, activations, sink);
}

}  // namespace difftx::bench
