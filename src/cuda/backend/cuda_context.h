// The process-wide CUDA state: the device in use, the one stream all difftx device work runs
// on, and the caching allocator registered for Device::cuda. Created by the first
// make_cuda_backend() and kept for the life of the process.
#pragma once

#include <cuda_runtime_api.h>

#include "caching_allocator.h"

namespace difftx::cuda {

class CudaContext {
 public:
  // The context, created on first use for `device_index`; a later call with another device
  // throws (Tensor has no device index, so one process drives one GPU).
  static CudaContext& get(int device_index);

  int device() const { return device_; }
  cudaStream_t stream() const { return stream_; }
  CachingAllocator& allocator() { return *allocator_; }

 private:
  explicit CudaContext(int device_index);

  int device_;
  cudaStream_t stream_ = nullptr;
  CachingAllocator* allocator_ = nullptr;
};

}  // namespace difftx::cuda
