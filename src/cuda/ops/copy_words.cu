// Copy of 32-bit words: kernel and launcher (see copy_words.cuh).
#include <algorithm>

#include "copy_words.cuh"
#include "device_util.cuh"

namespace difftx::cuda {
namespace {

// n4 16-byte chunks (when aligned), then the n - 4 n4 words left.
__global__ void copy_words_kernel(std::uint32_t* __restrict__ dst,
                                  const std::uint32_t* __restrict__ src, i64 n, i64 n4) {
  const i64 stride = i64(gridDim.x) * blockDim.x;
  const i64 first = blockIdx.x * i64(blockDim.x) + threadIdx.x;
  for (i64 i = first; i < n4; i += stride) {
    reinterpret_cast<uint4*>(dst)[i] = reinterpret_cast<const uint4*>(src)[i];
  }
  for (i64 i = 4 * n4 + first; i < n; i += stride) dst[i] = src[i];
}

}  // namespace

void launch_copy_words(void* dst, const void* src, std::int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const bool wide = reinterpret_cast<std::uintptr_t>(dst) % 16 == 0 &&
                    reinterpret_cast<std::uintptr_t>(src) % 16 == 0;
  const i64 n4 = wide ? n / 4 : 0;
  constexpr int threads = 256;
  const i64 items = std::max<i64>(n4, n - 4 * n4);
  const int blocks = static_cast<int>(std::clamp<i64>((items + threads - 1) / threads, 1, 132));
  copy_words_kernel<<<blocks, threads, 0, stream>>>(static_cast<std::uint32_t*>(dst),
                                                    static_cast<const std::uint32_t*>(src), n, n4);
  DIFFTX_CUDA_CHECK_LAUNCH("copy_async", "copy_words_kernel");
}

}  // namespace difftx::cuda
