// Copy of 32-bit words: kernels and launchers (see copy_words.cuh).
#include <algorithm>

#include "copy_words.cuh"
#include "device_util.cuh"
#include "pdl.cuh"

namespace difftx::cuda {
namespace {

constexpr int kThreads = 256;

// n4 16-byte chunks (when aligned), then the n - 4 n4 words left.
__global__ void copy_words_kernel(std::uint32_t* __restrict__ dst,
                                  const std::uint32_t* __restrict__ src, i64 n, i64 n4) {
  pdl_wait();
  pdl_launch_dependents();
  const i64 stride = i64(gridDim.x) * blockDim.x;
  const i64 first = blockIdx.x * i64(blockDim.x) + threadIdx.x;
  for (i64 i = first; i < n4; i += stride) {
    reinterpret_cast<uint4*>(dst)[i] = reinterpret_cast<const uint4*>(src)[i];
  }
  for (i64 i = 4 * n4 + first; i < n; i += stride) dst[i] = src[i];
}

// The word at index i: from a patch if one covers it, else v.
__device__ __forceinline__ std::uint32_t patched(std::uint32_t v, i64 i,
                                                 const std::uint32_t* __restrict__ from,
                                                 const WordPatches& p) {
  for (int k = 0; k < p.count; ++k) {
    if (i >= p.at[k] && i < p.at[k] + p.len[k]) return from[p.from[k] + (i - p.at[k])];
  }
  return v;
}

// One 16-byte chunk (or word) per thread: src read before the wait, the patches after it.
__global__ void copy_words_patched_kernel(std::uint32_t* __restrict__ dst,
                                          const std::uint32_t* __restrict__ src, i64 n, i64 n4,
                                          const std::uint32_t* __restrict__ from,
                                          const WordPatches patches) {
  const i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x;
  const i64 tail = n - 4 * n4;
  uint4 v = make_uint4(0, 0, 0, 0);
  if (i < n4) {
    v = reinterpret_cast<const uint4*>(src)[i];
  } else if (i - n4 < tail) {
    v.x = src[4 * n4 + (i - n4)];
  }
  pdl_wait();
  pdl_launch_dependents();
  if (i < n4) {
    const i64 w = 4 * i;
    v.x = patched(v.x, w, from, patches);
    v.y = patched(v.y, w + 1, from, patches);
    v.z = patched(v.z, w + 2, from, patches);
    v.w = patched(v.w, w + 3, from, patches);
    reinterpret_cast<uint4*>(dst)[i] = v;
  } else if (i - n4 < tail) {
    const i64 w = 4 * n4 + (i - n4);
    dst[w] = patched(v.x, w, from, patches);
  }
}

bool both_aligned16(const void* a, const void* b) {
  return aligned16(a) && aligned16(b);
}

}  // namespace

void launch_copy_words(void* dst, const void* src, std::int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const i64 n4 = both_aligned16(dst, src) ? n / 4 : 0;
  const i64 items = std::max<i64>(n4, n - 4 * n4);
  const int blocks = static_cast<int>(std::clamp<i64>((items + kThreads - 1) / kThreads, 1, 132));
  DIFFTX_CUDA_CHECK(
      "copy_async",
      launch_pdl(copy_words_kernel, dim3(blocks), dim3(kThreads), 0, stream, pdl_enabled("copy"),
                 static_cast<std::uint32_t*>(dst), static_cast<const std::uint32_t*>(src), n, n4));
}

void launch_copy_words_patched(void* dst, const void* src, std::int64_t n,
                               const std::uint32_t* from, const WordPatches& patches,
                               cudaStream_t stream) {
  if (n <= 0) return;
  if (patches.count < 0 || patches.count > kMaxWordPatches) {
    throw_op_error("copy_async_patched", "at most 8 patches");
  }
  const i64 n4 = both_aligned16(dst, src) ? n / 4 : 0;
  const i64 items = n4 + (n - 4 * n4);
  const i64 blocks = (items + kThreads - 1) / kThreads;
  DIFFTX_CUDA_CHECK("copy_async_patched",
                    launch_pdl(copy_words_patched_kernel, dim3(unsigned(blocks)), dim3(kThreads), 0,
                               stream, pdl_enabled("copy"), static_cast<std::uint32_t*>(dst),
                               static_cast<const std::uint32_t*>(src), n, n4, from, patches));
}

}  // namespace difftx::cuda
