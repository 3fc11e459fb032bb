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

__device__ __forceinline__ unsigned load_acquire_gpu(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
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
  unsigned acc = 0;
  i64 use = 0;
  constexpr int kWords = kRingActivationWords;
  for (int s = 0; s < count; ++s) {
    if (s > 0) {  // stage s - 1 done everywhere; its activation vector read back
      if (tid == 0) {
        const unsigned target = unsigned(g);
        while (load_acquire_gpu(arrivals + s - 1) < target) {
        }
      }
      attn::named_bar_sync(kConsumerBarrier, kConsumerThreads);
      const std::uint32_t* in = activations + (s - 1) % 2 * kWords;
      for (int i = tid; i < kWords / 4; i += kConsumerThreads) {
        const uint4 v = __ldcg(reinterpret_cast<const uint4*>(in) + i);
        acc ^= v.x + v.y * 3u + v.z * 5u + v.w * 7u;
      }
    }
    i64 begin, end;
    block_slice(stages[s].n, b, g, begin, end);
    for (i64 c = begin; c < end; c += piece_chunks, ++use) {
      const int slot = int(use % slots);
      attn::mbar_wait(cuda::smem_addr(&full[slot]), unsigned((use / slots) & 1));
      const int n = int(min(i64(piece_chunks), end - c));
      const uint4* piece = ring + i64(slot) * piece_chunks;
      for (int i = tid; i < n; i += kConsumerThreads) {
        const uint4 v = piece[i];
        acc ^= v.x + v.y * 3u + v.z * 5u + v.w * 7u;
      }
      __syncwarp();
      if (lane == 0) attn::mbar_arrive(cuda::smem_addr(&empty[slot]));
    }
    // This block's part of stage s's activation vector, then its arrival.
    std::uint32_t* out = activations + s % 2 * kWords;
    for (int i = kWords * b / g + tid; i < kWords * (b + 1) / g; i += kConsumerThreads)
      out[i] = acc + i;
    attn::named_bar_sync(kConsumerBarrier, kConsumerThreads);
    if (tid == 0) {
      __threadfence();
      atomicAdd(arrivals + s, 1u);
    }
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

  unsigned acc = 0;
  i64 use = 0;
  constexpr int kWords = kRingActivationWords;
  for (int s = 0; s < count; ++s) {
    if (s > 0) {
      if (tid == 0) {
        while (load_acquire_gpu(arrivals + s - 1) < unsigned(g)) {
        }
      }
      __syncthreads();
      const std::uint32_t* in = activations + (s - 1) % 2 * kWords;
      for (int i = tid; i < kWords / 4; i += kConsumerThreads) {
        const uint4 v = __ldcg(reinterpret_cast<const uint4*>(in) + i);
        acc ^= v.x + v.y * 3u + v.z * 5u + v.w * 7u;
      }
    }
    i64 begin, end;
    block_slice(stages[s].n, b, g, begin, end);
    for (i64 c = begin; c < end; c += piece_chunks, ++use) {
      cuda::cp_async_wait<kLsuLag - 1>();  // this thread's copies of piece `use` have landed
      const int n = int(min(i64(piece_chunks), end - c));
      const uint4* piece = ring + (use % kLsuLag) * piece_chunks;
      for (int i = tid; i < n; i += kConsumerThreads) {
        const uint4 v = piece[i];
        acc ^= v.x + v.y * 3u + v.z * 5u + v.w * 7u;
      }
      issue_one();  // into the slot just read (by this thread only)
    }
    std::uint32_t* out = activations + s % 2 * kWords;
    for (int i = kWords * b / g + tid; i < kWords * (b + 1) / g; i += kConsumerThreads)
      out[i] = acc + i;
    __syncthreads();
    if (tid == 0) {
      __threadfence();
      atomicAdd(arrivals + s, 1u);
    }
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
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(blocks);
  config.blockDim = dim3(kConsumerThreads);
  config.dynamicSmemBytes = std::size_t(kLsuLag) * std::size_t(piece_bytes);
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeCooperative;
  attribute.val.cooperative = 1;
  config.attrs = &attribute;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, ring_lsu_kernel, stages, count, piece_bytes / 16, arrivals,
                            activations, sink);
}

cudaError_t allow_read_ring_smem(std::size_t bytes) {
  return cudaFuncSetAttribute(ring_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
}

cudaError_t launch_read_ring(const ReadStage* stages, int count, unsigned blocks, int slots,
                             int piece_bytes, cudaStream_t stream, unsigned* arrivals,
                             std::uint32_t* activations, unsigned* sink) {
  if (slots < 2 || slots > kMaxSlots || piece_bytes < 16 || piece_bytes % 16 != 0)
    return cudaErrorInvalidValue;
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(blocks);
  config.blockDim = dim3(kRingThreads);
  config.dynamicSmemBytes = std::size_t(slots) * std::size_t(piece_bytes);
  config.stream = stream;
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeCooperative;  // every block resident: the consumers spin
  attribute.val.cooperative = 1;
  config.attrs = &attribute;
  config.numAttrs = 1;
  return cudaLaunchKernelEx(&config, ring_kernel, stages, count, slots, piece_bytes / 16, arrivals,
                            activations, sink);
}

}  // namespace difftx::bench
