// RoPE at per-token positions: kernel and launcher (see rope_positions.cuh). One thread per
// (row, head, frequency): a decode step has one row, so the heads give the parallelism (a loop
// over them made each thread wait on one dependent load per head: 12 us for 24 heads).
#include <cmath>

#include "device_util.cuh"
#include "pdl.cuh"
#include "rope_positions.cuh"

namespace difftx::cuda {
namespace {

template <typename T>
__global__ void rope_positions_kernel(T* __restrict__ x, i64 n, i64 row_stride,
                                      const std::int32_t* __restrict__ positions, int heads,
                                      int head_dim, double log_theta, bool interleaved) {
  pdl_wait();
  pdl_launch_dependents();
  const int half = head_dim / 2;
  const i64 per_row = i64(heads) * half;
  const i64 total = n * per_row;
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  for (i64 idx = blockIdx.x * i64(blockDim.x) + threadIdx.x; idx < total;
       idx += i64(gridDim.x) * blockDim.x) {
    const i64 row = idx / per_row;
    const int rest = static_cast<int>(idx - row * per_row);
    const int h = rest / half, i = rest % half;
    const double inv_freq = exp(-2.0 * i / head_dim * log_theta);
    double angle = double(positions[row]) * inv_freq;
    angle -= kTwoPi * rint(angle / kTwoPi);
    float s, c;
    sincosf(static_cast<float>(angle), &s, &c);
    const int i0 = interleaved ? 2 * i : i;
    const int i1 = interleaved ? 2 * i + 1 : i + half;
    T* v = x + row * row_stride + i64(h) * head_dim;
    const float x0 = convert_to<float>(v[i0]), x1 = convert_to<float>(v[i1]);
    v[i0] = convert_to<T>(x0 * c - x1 * s);
    v[i1] = convert_to<T>(x0 * s + x1 * c);
  }
}

}  // namespace

void launch_rope_positions(void* x, ScalarType type, std::int64_t n, std::int64_t row_stride,
                           const std::int32_t* positions, int heads, int head_dim, double theta,
                           bool interleaved, cudaStream_t stream) {
  const i64 total = n * heads * (head_dim / 2);
  if (total == 0) return;
  constexpr int threads = 128;
  const double log_theta = std::log(theta);
  DIFFTX_DISPATCH_F32_BF16("rope_positions", type, T, {
    DIFFTX_CUDA_CHECK("rope_positions",
                      launch_pdl(rope_positions_kernel<T>, dim3(grid_blocks(total, threads)),
                                 dim3(threads), 0, stream, pdl_enabled(), static_cast<T*>(x), n,
                                 row_stride, positions, heads, head_dim, log_theta, interleaved));
  })
}

}  // namespace difftx::cuda
