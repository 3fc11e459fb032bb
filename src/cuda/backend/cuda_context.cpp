// Process-wide CUDA context (see cuda_context.h).
#include "cuda_context.h"

#include <mutex>

#include "difftx/core/error.h"
#include "difftx/cuda/common/check.h"

namespace difftx::cuda {

CudaContext::CudaContext(int device_index) : device_(device_index) {
  int count = 0;
  DIFFTX_CUDA_CHECK("cuda backend", cudaGetDeviceCount(&count));
  DIFFTX_CHECK(device_index >= 0 && device_index < count,
               "cuda backend: device {} requested, {} CUDA device(s) present", device_index, count);
  DIFFTX_CUDA_CHECK("cuda backend", cudaSetDevice(device_index));
  // A blocking stream: it also orders against work other code issues on the legacy default
  // stream.
  DIFFTX_CUDA_CHECK("cuda backend", cudaStreamCreate(&stream_));
  // Never destroyed: tensors may outlive every backend until process exit.
  allocator_ = new CachingAllocator(device_index, stream_);
  register_allocator(Device::cuda, allocator_);
}

CudaContext& CudaContext::get(int device_index) {
  static std::mutex mutex;
  static CudaContext* context = nullptr;
  std::lock_guard<std::mutex> lock(mutex);
  if (!context) context = new CudaContext(device_index);  // lives until exit
  DIFFTX_CHECK(context->device_ == device_index,
               "cuda backend: this process already uses CUDA device {}; device {} cannot be "
               "added (one GPU per process)",
               context->device_, device_index);
  DIFFTX_CUDA_CHECK("cuda backend", cudaSetDevice(device_index));
  return *context;
}

}  // namespace difftx::cuda
