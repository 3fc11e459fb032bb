// Statistics kernels of the evaluation probes (probe_stats.cuh). The histogram keeps one 32,768-bin
// u32 histogram per block in shared memory (128 KB, one block per multiprocessor) and adds its
// non-zero bins to the f64 result with atomics; selection appends through one atomic counter.
#include "device_util.cuh"
#include "probe_stats.cuh"

namespace difftx::cuda {
namespace {

constexpr int kBins = kProbeHistogramBins;
constexpr int kHistThreads = 1024;

__device__ __forceinline__ int bin_of(float x) {
  return int((__float_as_uint(x) & 0x7fffffffu) >> 16);
}

// Calls fn(i) for every counted element index, grid-stride: all n, or by warps over the visible
// prefix of each score row.
template <typename Fn>
__device__ __forceinline__ void for_each_counted(i64 n, bool scores, const ScoreRows& g, Fn&& fn) {
  if (!scores) {
    for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < n;
         i += i64(gridDim.x) * blockDim.x)
      fn(i);
    return;
  }
  const int lane = threadIdx.x & 31;
  const i64 warp = (blockIdx.x * i64(blockDim.x) + threadIdx.x) >> 5;
  const i64 warps = (i64(gridDim.x) * blockDim.x) >> 5;
  const i64 rows = n / g.kv_len;
  for (i64 r = warp; r < rows; r += warps) {
    const int t = int(r % g.q_len);
    const int visible = g.kv_len < g.q_offset + t + 1 ? g.kv_len : g.q_offset + t + 1;
    for (int s = lane; s < visible; s += 32) fn(r * g.kv_len + s);
  }
}

template <typename T>
__global__ void histogram_kernel(const T* __restrict__ x, i64 n, bool scores, ScoreRows g,
                                 double* __restrict__ counts) {
  extern __shared__ unsigned hist[];
  for (int b = threadIdx.x; b < kBins; b += blockDim.x) hist[b] = 0;
  __syncthreads();
  for_each_counted(n, scores, g,
                   [&](i64 i) { atomicAdd(&hist[bin_of(convert_to<float>(x[i]))], 1u); });
  __syncthreads();
  for (int b = threadIdx.x; b < kBins; b += blockDim.x) {
    if (hist[b]) atomicAdd(&counts[b], double(hist[b]));
  }
}

template <typename T>
__global__ void select_kernel(const T* __restrict__ x, i64 n, bool scores, ScoreRows g,
                              double threshold, float* __restrict__ out,
                              unsigned long long capacity,
                              unsigned long long* __restrict__ counter) {
  for_each_counted(n, scores, g, [&](i64 i) {
    const float a = fabsf(convert_to<float>(x[i]));
    if (double(a) >= threshold) {
      const unsigned long long slot = atomicAdd(counter, 1ull);
      if (slot < capacity) out[slot] = a;
    }
  });
}

template <typename T>
__global__ void kl_rows_kernel(const T* __restrict__ ref, const T* __restrict__ x, i64 vocab,
                               float* __restrict__ out) {
  __shared__ float red[32];
  const T* a = ref + i64(blockIdx.x) * vocab;
  const T* b = x + i64(blockIdx.x) * vocab;
  float ma = -INFINITY, mb = -INFINITY;
  for (i64 v = threadIdx.x; v < vocab; v += blockDim.x) {
    ma = fmaxf(ma, convert_to<float>(a[v]));
    mb = fmaxf(mb, convert_to<float>(b[v]));
  }
  // block max of both
  ma = warp_max(ma);
  mb = warp_max(mb);
  __shared__ float red2[32];
  if ((threadIdx.x & 31) == 0) {
    red[threadIdx.x >> 5] = ma;
    red2[threadIdx.x >> 5] = mb;
  }
  __syncthreads();
  ma = -INFINITY;
  mb = -INFINITY;
  for (int w = 0; w < int(blockDim.x >> 5); ++w) {
    ma = fmaxf(ma, red[w]);
    mb = fmaxf(mb, red2[w]);
  }
  float sa = 0.f, sb = 0.f;
  for (i64 v = threadIdx.x; v < vocab; v += blockDim.x) {
    sa += expf(convert_to<float>(a[v]) - ma);
    sb += expf(convert_to<float>(b[v]) - mb);
  }
  sa = block_sum(sa, red);
  sb = block_sum(sb, red2);
  const float la = ma + logf(sa), lb = mb + logf(sb);  // log-sum-exps
  float kl = 0.f;
  for (i64 v = threadIdx.x; v < vocab; v += blockDim.x) {
    const float lpa = convert_to<float>(a[v]) - la, lpb = convert_to<float>(b[v]) - lb;
    kl += expf(lpa) * (lpa - lpb);
  }
  kl = block_sum(kl, red);
  if (threadIdx.x == 0) out[blockIdx.x] = fmaxf(kl, 0.f);
}

int multiprocessors() {
  static const int count = [] {
    int device = 0, sms = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    return sms > 0 ? sms : 1;
  }();
  return count;
}

}  // namespace

void launch_abs_histogram(const void* x, ScalarType type, std::int64_t n, const ScoreRows* rows,
                          double* counts, cudaStream_t stream) {
  DIFFTX_CUDA_CHECK("abs_histogram", cudaMemsetAsync(counts, 0, sizeof(double) * kBins, stream));
  if (n == 0) return;
  const ScoreRows g = rows ? *rows : ScoreRows{};
  const std::size_t smem = sizeof(unsigned) * kBins;
  DIFFTX_DISPATCH_F32_BF16("abs_histogram", type, T, {
    DIFFTX_CUDA_CHECK("abs_histogram",
                      cudaFuncSetAttribute(histogram_kernel<T>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    histogram_kernel<T><<<multiprocessors(), kHistThreads, smem, stream>>>(
        static_cast<const T*>(x), n, rows != nullptr, g, counts);
  })
  DIFFTX_CUDA_CHECK_LAUNCH("abs_histogram", "histogram_kernel");
}

std::int64_t launch_abs_select_at_least(const void* x, ScalarType type, std::int64_t n,
                                        const ScoreRows* rows, double threshold, float* out,
                                        std::int64_t capacity, void* workspace,
                                        cudaStream_t stream) {
  auto* counter = static_cast<unsigned long long*>(workspace);
  DIFFTX_CUDA_CHECK("abs_select_at_least",
                    cudaMemsetAsync(counter, 0, sizeof(unsigned long long), stream));
  if (n > 0) {
    const ScoreRows g = rows ? *rows : ScoreRows{};
    DIFFTX_DISPATCH_F32_BF16("abs_select_at_least", type, T, {
      select_kernel<T><<<4 * multiprocessors(), 256, 0, stream>>>(
          static_cast<const T*>(x), n, rows != nullptr, g, threshold, out,
          static_cast<unsigned long long>(capacity), counter);
    })
    DIFFTX_CUDA_CHECK_LAUNCH("abs_select_at_least", "select_kernel");
  }
  unsigned long long host = 0;
  DIFFTX_CUDA_CHECK("abs_select_at_least",
                    cudaMemcpyAsync(&host, counter, sizeof host, cudaMemcpyDeviceToHost, stream));
  DIFFTX_CUDA_CHECK("abs_select_at_least", cudaStreamSynchronize(stream));
  return std::int64_t(host);
}

void launch_kl_divergence_rows(const void* ref, const void* x, ScalarType type, std::int64_t n,
                               std::int64_t vocab, float* out, cudaStream_t stream) {
  if (n == 0) return;
  DIFFTX_DISPATCH_F32_BF16("kl_divergence_rows", type, T, {
    kl_rows_kernel<T><<<unsigned(n), 256, 0, stream>>>(static_cast<const T*>(ref),
                                                       static_cast<const T*>(x), vocab, out);
  })
  DIFFTX_CUDA_CHECK_LAUNCH("kl_divergence_rows", "kl_rows_kernel");
}

}  // namespace difftx::cuda
