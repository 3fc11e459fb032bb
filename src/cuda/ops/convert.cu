// Convert: kernel and launcher (see convert.cuh).
#include "convert.cuh"
#include "device_util.cuh"

namespace difftx::cuda {
namespace {

template <typename S, typename D>
__global__ void convert_kernel(const S* __restrict__ src, D* __restrict__ dst, i64 n) {
  for (i64 i = blockIdx.x * i64(blockDim.x) + threadIdx.x; i < n;
       i += i64(gridDim.x) * blockDim.x) {
    dst[i] = convert_to<D>(src[i]);
  }
}

}  // namespace

void launch_convert(const void* src, ScalarType src_type, void* dst, ScalarType dst_type,
                    std::int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  if (src_type == dst_type) {
    const std::size_t bytes = std::size_t(n) * scalar_type_size(src_type);
    DIFFTX_CUDA_CHECK("convert",
                      cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
    return;
  }
  constexpr int threads = 256;
  const unsigned blocks = grid_blocks(n, threads * 4);
  DIFFTX_DISPATCH_FLOAT("convert", src_type, S, {DIFFTX_DISPATCH_FLOAT("convert", dst_type, D, {
                          convert_kernel<S, D><<<blocks, threads, 0, stream>>>(
                              static_cast<const S*>(src), static_cast<D*>(dst), n);
                        })})
  DIFFTX_CUDA_CHECK_LAUNCH("convert", "convert_kernel");
}

}  // namespace difftx::cuda
