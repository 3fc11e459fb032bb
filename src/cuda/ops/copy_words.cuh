// Copy of 32-bit words by a kernel: for small transfers between device memory and page-locked,
// mapped host memory (or within the device), where a copy-engine transfer would cost more in
// latency on the stream than the bytes take.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace difftx::cuda {

// dst (n) = src (n); both 4-byte aligned and addressable by the device (device memory or mapped
// host memory), not overlapping. 16-byte transfers where both are 16-byte aligned.
void launch_copy_words(void* dst, const void* src, std::int64_t n, cudaStream_t stream);

}  // namespace difftx::cuda
