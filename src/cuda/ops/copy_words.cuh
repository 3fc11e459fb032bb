// Copy of 32-bit words by a kernel: for small transfers between device memory and page-locked,
// mapped host memory (or within the device), where a copy-engine transfer would cost more in
// latency on the stream than the bytes take.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace difftx::cuda {

// dst (n) = src (n); both 4-byte aligned and addressable by the device (device memory or mapped
// host memory), not overlapping. 16-byte transfers where both are 16-byte aligned. Launched with
// PDL: it waits for the kernels before it, then lets the next one start.
void launch_copy_words(void* dst, const void* src, std::int64_t n, cudaStream_t stream);

// Runs of dst that launch_copy_words_patched takes from `from` instead of src.
constexpr int kMaxWordPatches = 8;
struct WordPatches {
  int count = 0;
  std::int64_t at[kMaxWordPatches] = {};    // first word of dst
  std::int64_t from[kMaxWordPatches] = {};  // first word of `from`
  std::int64_t len[kMaxWordPatches] = {};   // words
};

// dst (n) = src (n), except dst[at_i + j] = from[from_i + j] for j < len_i of each patch (runs
// inside [0, n), not overlapping one another). src must not be written by the kernels queued
// before (its words are read before the kernel waits on them: pinned host memory the host filled
// before queuing the copy); `from` may be (read after the wait). One kernel where a copy and a
// copy per run would be several.
void launch_copy_words_patched(void* dst, const void* src, std::int64_t n,
                               const std::uint32_t* from, const WordPatches& patches,
                               cudaStream_t stream);

}  // namespace difftx::cuda
