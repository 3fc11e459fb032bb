// Sum of squares: kernels and launcher (see reduce.cuh).
#include "device_util.cuh"
#include "reduce.cuh"

namespace difftx::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;
constexpr int kFinalThreads = 1024;

int partial_blocks(std::int64_t n) {
  return static_cast<int>(grid_blocks(n, kThreads * 8, kMaxBlocks));
}

template <typename T>
__global__ void sum_of_squares_partial_kernel(const T* __restrict__ x, i64 n,
                                              double* __restrict__ partial) {
  __shared__ double red[32];
  double s = 0.0;
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < n;
       i += i64(gridDim.x) * blockDim.x) {
    const double v = convert_to<double>(x[i]);
    s += v * v;
  }
  s = block_sum(s, red);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void sum_partials_kernel(const double* __restrict__ partial, int count,
                                    double* __restrict__ result) {
  __shared__ double red[32];
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  s = block_sum(s, red);
  if (threadIdx.x == 0) *result = s;
}

}  // namespace

std::size_t sum_of_squares_workspace_bytes(std::int64_t n) {
  return (std::size_t(partial_blocks(n)) + 1) * sizeof(double);
}

double launch_sum_of_squares(const void* x, ScalarType type, std::int64_t n, void* workspace,
                             std::size_t workspace_bytes, cudaStream_t stream) {
  if (n == 0) return 0.0;
  if (workspace_bytes < sum_of_squares_workspace_bytes(n)) {
    throw_op_error("sum_of_squares", "workspace too small");
  }
  const int blocks = partial_blocks(n);
  auto* partial = static_cast<double*>(workspace);
  double* result = partial + blocks;
  DIFFTX_DISPATCH_FLOAT("sum_of_squares", type, T, {
    sum_of_squares_partial_kernel<T>
        <<<blocks, kThreads, 0, stream>>>(static_cast<const T*>(x), n, partial);
  })
  DIFFTX_CUDA_CHECK_LAUNCH("sum_of_squares", "sum_of_squares_partial_kernel");
  sum_partials_kernel<<<1, kFinalThreads, 0, stream>>>(partial, blocks, result);
  DIFFTX_CUDA_CHECK_LAUNCH("sum_of_squares", "sum_partials_kernel");
  double host = 0.0;
  DIFFTX_CUDA_CHECK("sum_of_squares",
                    cudaMemcpyAsync(&host, result, sizeof(double), cudaMemcpyDeviceToHost, stream));
  DIFFTX_CUDA_CHECK("sum_of_squares", cudaStreamSynchronize(stream));
  return host;
}

}  // namespace difftx::cuda
