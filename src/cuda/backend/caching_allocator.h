// The CUDA DeviceAllocator: plain cudaMalloc behind a simple size-bucketed cache (no managed
// memory). Freed blocks are kept and handed out again for requests of about the same size; all
// device work runs on one stream, so a block reused on that stream is ordered after its last use.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>

#include "difftx/core/tensor.h"

namespace difftx::cuda {

class CachingAllocator final : public DeviceAllocator {
 public:
  CachingAllocator(int device, cudaStream_t stream);
  ~CachingAllocator() override;
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  void* allocate(std::size_t bytes) override;
  void deallocate(void* ptr) override;
  // Any direction (UVA), on the stream, then waits for the stream.
  void copy(void* dst, Device dst_device, const void* src, Device src_device,
            std::size_t bytes) override;

 private:
  static std::size_t round_size(std::size_t bytes);
  // Returns every cached (free) block to the driver; mutex_ held.
  void release_cached_locked();

  int device_;
  cudaStream_t stream_;
  std::mutex mutex_;
  std::unordered_map<void*, std::size_t> live_;  // pointer -> block size
  std::multimap<std::size_t, void*> free_;       // block size -> pointer
  std::size_t live_bytes_ = 0;
  std::size_t cached_bytes_ = 0;
};

}  // namespace difftx::cuda
