// The caching CUDA allocator (see caching_allocator.h).
#include "caching_allocator.h"

#include "difftx/core/error.h"
#include "difftx/cuda/common/check.h"

namespace difftx::cuda {

CachingAllocator::CachingAllocator(int device, cudaStream_t stream)
    : device_(device), stream_(stream) {}

CachingAllocator::~CachingAllocator() {
  // Process teardown may have unloaded the runtime already: errors here are ignored.
  for (auto& [size, ptr] : free_) cudaFree(ptr);
}

std::size_t CachingAllocator::round_size(std::size_t bytes) {
  // 512 B steps below 1 MiB, 128 KiB steps below 64 MiB, 2 MiB steps above.
  constexpr std::size_t kMiB = std::size_t(1) << 20;
  const std::size_t step = bytes < kMiB ? 512 : bytes < 64 * kMiB ? 128 * 1024 : 2 * kMiB;
  return bytes == 0 ? step : (bytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(std::size_t bytes) {
  const std::size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  // Reuse a cached block wasting at most a quarter of it.
  auto it = free_.lower_bound(size);
  if (it != free_.end() && it->first <= size + size / 4) {
    void* p = it->second;
    const std::size_t block = it->first;
    free_.erase(it);
    cached_bytes_ -= block;
    live_.emplace(p, block);
    live_bytes_ += block;
    return p;
  }
  DIFFTX_CUDA_CHECK("allocate", cudaSetDevice(device_));
  void* p = nullptr;
  cudaError_t status = cudaMalloc(&p, size);
  if (status == cudaErrorMemoryAllocation && cached_bytes_ > 0) {
    (void)cudaGetLastError();  // clear it, give the cache back and try once more
    release_cached_locked();
    status = cudaMalloc(&p, size);
  }
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    fail(
        "cuda allocator: cudaMalloc of {} bytes failed: {} ({} bytes in use by live tensors, {} "
        "cached); use smaller batches or sequences",
        size, cudaGetErrorString(status), live_bytes_, cached_bytes_);
  }
  live_.emplace(p, size);
  live_bytes_ += size;
  return p;
}

void CachingAllocator::deallocate(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_.find(ptr);
  DIFFTX_CHECK(it != live_.end(), "cuda allocator: free of {} which it did not allocate", ptr);
  free_.emplace(it->second, ptr);
  cached_bytes_ += it->second;
  live_bytes_ -= it->second;
  live_.erase(it);
}

void CachingAllocator::copy(void* dst, Device, const void* src, Device, std::size_t bytes) {
  if (bytes == 0) return;
  DIFFTX_CUDA_CHECK("tensor copy", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_));
  DIFFTX_CUDA_CHECK("tensor copy", cudaStreamSynchronize(stream_));
}

void CachingAllocator::release_cached_locked() {
  DIFFTX_CUDA_CHECK("release cached memory", cudaStreamSynchronize(stream_));
  for (auto& [size, ptr] : free_) DIFFTX_CUDA_CHECK("release cached memory", cudaFree(ptr));
  free_.clear();
  cached_bytes_ = 0;
}

}  // namespace difftx::cuda
