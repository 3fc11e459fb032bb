// Kernels of bench_read_chain (see bench_read_chain.cpp): streaming a weight's bytes with no
// arithmetic as one stage of a chain of kernels, or every stage in one persistent kernel (with a
// grid barrier between stages, or with the reads streamed ahead through shared memory: the ring).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace difftx::bench {

constexpr int kReadThreads = 256;  // threads per block of both kernels

struct ReadStage {
  const void* w;   // 16-byte aligned
  std::int64_t n;  // 16-byte chunks; 0 for an attention stand-in
};

// `smem`: dynamic shared memory per block, unused by the kernel: it only limits how many blocks
// (of this kernel and the next) fit on a multiprocessor (allow_read_stage_smem first).
// `early`: the kernel lets the next one launch before it waits on the one before (at its start).
// `ahead`: each thread issues its next batch of loads before it consumes the current one.
// One stage kernel over `s` (grid: enough blocks for 8 chunks per thread, at most `cap`; `cap`
// for a stand-in), launched with PDL when `pdl`. It reads token_in after its dependency wait,
// and block 0 writes token_in + 1 to token_out. `sink` holds a thread per block of `cap` blocks.
cudaError_t launch_read_stage(const ReadStage& s, int cap, bool pdl, bool ahead, bool early,
                              std::size_t smem, cudaStream_t stream, const unsigned* token_in,
                              unsigned* token_out, unsigned* sink);

// All `count` stages (device array) in one cooperative kernel of `blocks` blocks with a grid
// barrier between stages on `arrivals`, which must be zero at launch.
cudaError_t launch_read_persistent(const ReadStage* stages, int count, unsigned blocks, bool ahead,
                                   cudaStream_t stream, unsigned* arrivals, unsigned* sink);

// Lets the stage kernels take `bytes` of dynamic shared memory per block.
cudaError_t allow_read_stage_smem(std::size_t bytes);

// Blocks of the persistent kernel that fit on one multiprocessor.
int read_persistent_blocks_per_sm(bool ahead);

// The ring mode (read_ring_kernel.cu, sm_90): consumer warps per block (plus one producer warp),
// and the words (4 bytes) of the activation vector each stage writes and the next reads back.
constexpr int kRingConsumerWarps = 8;
constexpr int kRingActivationWords = 1024;

// All `count` stages in one cooperative kernel of `blocks` blocks (one per multiprocessor), each
// streaming its slice of every stage through `slots` pieces of `piece_bytes` of shared memory
// ahead of the stages' dependencies. `arrivals` (one counter per stage) must be zero at launch;
// `activations` holds 2 x kRingActivationWords words; `sink` a word per thread of every block.
cudaError_t launch_read_ring(const ReadStage* stages, int count, unsigned blocks, int slots,
                             int piece_bytes, cudaStream_t stream, unsigned* arrivals,
                             std::uint32_t* activations, unsigned* sink);

// Lets the ring kernel take `bytes` of dynamic shared memory per block.
cudaError_t allow_read_ring_smem(std::size_t bytes);

// The ring with the consumers' own 16-byte cp.async loads instead of a producer's bulk copies
// (read_ring_lsu_pieces() pieces of `piece_bytes` in flight per block); same arguments.
cudaError_t launch_read_ring_lsu(const ReadStage* stages, int count, unsigned blocks,
                                 int piece_bytes, cudaStream_t stream, unsigned* arrivals,
                                 std::uint32_t* activations, unsigned* sink);
cudaError_t allow_read_ring_lsu_smem(std::size_t bytes);
int read_ring_lsu_pieces();

}  // namespace difftx::bench
