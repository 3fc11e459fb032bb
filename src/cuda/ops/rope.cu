// RoPE: kernel and launcher (see rope.cuh). One thread per (token, frequency), looping over the
// heads, so each angle's sine and cosine are computed once per token.
#include <cmath>

#include "device_util.cuh"
#include "rope.cuh"

namespace difftx::cuda {
namespace {

template <typename T>
__global__ void rope_kernel(T* __restrict__ x, i64 tokens, int seq, int heads, int head_dim,
                            i64 row_stride, int pos_offset, double log_theta, bool interleaved,
                            float sign) {
  const int half = head_dim / 2;
  const i64 total = tokens * half;
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  for (i64 idx = blockIdx.x * i64(blockDim.x) + threadIdx.x; idx < total;
       idx += i64(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(idx % half);
    const i64 token = idx / half;  // b * seq + t
    const int t = static_cast<int>(token % seq);
    const double inv_freq = exp(-2.0 * i / head_dim * log_theta);
    double angle = double(pos_offset + t) * inv_freq;
    angle -= kTwoPi * rint(angle / kTwoPi);
    float s, c;
    sincosf(static_cast<float>(angle), &s, &c);
    s *= sign;
    const int i0 = interleaved ? 2 * i : i;
    const int i1 = interleaved ? 2 * i + 1 : i + half;
    T* row = x + token * row_stride;
    for (int h = 0; h < heads; ++h) {
      T* v = row + i64(h) * head_dim;
      const float x0 = convert_to<float>(v[i0]), x1 = convert_to<float>(v[i1]);
      v[i0] = convert_to<T>(x0 * c - x1 * s);
      v[i1] = convert_to<T>(x0 * s + x1 * c);
    }
  }
}

}  // namespace

void launch_rope(void* x, ScalarType type, int batch, int seq, int heads, int head_dim,
                 std::int64_t row_stride, int pos_offset, double theta, bool interleaved,
                 bool inverse, cudaStream_t stream) {
  const i64 tokens = i64(batch) * seq;
  const i64 total = tokens * (head_dim / 2);
  if (total == 0 || heads == 0) return;
  constexpr int threads = 256;
  const double log_theta = std::log(theta);
  const float sign = inverse ? -1.f : 1.f;
  DIFFTX_DISPATCH_F32_BF16("rope", type, T, {
    rope_kernel<T><<<grid_blocks(total, threads), threads, 0, stream>>>(
        static_cast<T*>(x), tokens, seq, heads, head_dim, row_stride, pos_offset, log_theta,
        interleaved, sign);
  })
  DIFFTX_CUDA_CHECK_LAUNCH("rope", "rope_kernel");
}

}  // namespace difftx::cuda
