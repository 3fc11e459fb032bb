// The CUDA backend (the cuda_backend layer, above cuda_ops and cuda_attention): bf16
// activations, f32 master weights / gradients / optimizer state, every Backend op on one stream
// of one GPU (cuBLASLt matrix products, fused flash attention, fused cross-entropy). Built when
// DIFFTX_CUDA=ON; the first backend made registers the CUDA tensor allocator (a caching
// cudaMalloc allocator) for Device::cuda.
#pragma once

#include <memory>

#include "difftx/model/backend.h"

namespace difftx {

// act_dtype bf16, param_dtype f32. Throws difftx::Error when no such device exists.
std::unique_ptr<Backend> make_cuda_backend(int device_index = 0);

// Whether a CUDA device can be used (driver present and at least one device).
bool cuda_device_available();

}  // namespace difftx
