// Fill: kernel and launcher (see fill.cuh).
#include "device_util.cuh"
#include "fill.cuh"

namespace difftx::cuda {
namespace {

template <typename T>
__global__ void fill_kernel(T* __restrict__ p, i64 n, T value) {
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < n;
       i += i64(gridDim.x) * blockDim.x) {
    p[i] = value;
  }
}

template <typename T>
void fill_typed(T* p, i64 n, T value, cudaStream_t stream) {
  constexpr int threads = 256;
  fill_kernel<T><<<grid_blocks(n, threads * 4), threads, 0, stream>>>(p, n, value);
  DIFFTX_CUDA_CHECK_LAUNCH("fill", "fill_kernel");
}

}  // namespace

void launch_fill(void* p, ScalarType type, std::int64_t n, double value, cudaStream_t stream) {
  if (n == 0) return;
  switch (type) {
    case ScalarType::f32:
      fill_typed(static_cast<float*>(p), n, static_cast<float>(value), stream);
      break;
    case ScalarType::f64:
      fill_typed(static_cast<double*>(p), n, value, stream);
      break;
    case ScalarType::bf16:
      fill_typed(static_cast<bf16*>(p), n, convert_to<bf16>(value), stream);
      break;
    case ScalarType::i32:
      fill_typed(static_cast<std::int32_t*>(p), n, static_cast<std::int32_t>(value), stream);
      break;
  }
}

}  // namespace difftx::cuda
