// CudaBackend construction (the context, the cuBLASLt linear, the attention kernel family),
// the public factory and the device probe.
#include "cuda_backend.h"

#include "difftx/cuda/backend/cuda_backend.h"
#include "difftx/cuda/common/check.h"

namespace difftx {
namespace cuda {

CudaBackend::CudaBackend(int device_index)
    : context_(CudaContext::get(device_index)),
      linear_(std::make_unique<CublasLtLinear>(context_.stream())),
      attention_kernels_(select_attention_kernels(context_.device())) {}

CudaBackend::~CudaBackend() = default;

Tensor CudaBackend::scratch(std::size_t bytes) {
  if (bytes == 0) return Tensor();
  return Tensor::empty({static_cast<std::int64_t>((bytes + 7) / 8)}, DType::f64, Device::cuda);
}

}  // namespace cuda

std::unique_ptr<Backend> make_cuda_backend(int device_index) {
  return std::make_unique<cuda::CudaBackend>(device_index);
}

bool cuda_device_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return count > 0;
}

}  // namespace difftx
