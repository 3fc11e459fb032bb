// Scale: kernel and launcher (see scale.cuh).
#include "device_util.cuh"
#include "scale.cuh"

namespace difftx::cuda {
namespace {

template <typename T>
__global__ void scale_kernel(T* __restrict__ x, i64 n, acc_t<T> factor) {
  using A = acc_t<T>;
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < n;
       i += i64(gridDim.x) * blockDim.x) {
    x[i] = convert_to<T>(convert_to<A>(x[i]) * factor);
  }
}

}  // namespace

void launch_scale(void* x, ScalarType type, std::int64_t n, double factor, cudaStream_t stream) {
  if (n == 0) return;
  constexpr int threads = 256;
  DIFFTX_DISPATCH_FLOAT("scale_inplace", type, T, {
    scale_kernel<T><<<grid_blocks(n, threads * 4), threads, 0, stream>>>(
        static_cast<T*>(x), n, static_cast<acc_t<T>>(factor));
  })
  DIFFTX_CUDA_CHECK_LAUNCH("scale_inplace", "scale_kernel");
}

}  // namespace difftx::cuda
