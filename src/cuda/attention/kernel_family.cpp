// The attention kernel family of a device (see attention.h): Hopper wgmma kernels on compute
// capability 9.0 (built for sm_90a), the portable mma.sync kernels elsewhere or when the
// environment variable DIFFTX_ATTENTION_KERNELS=mma asks for them.
#include <cuda_runtime_api.h>

#include <cstdlib>
#include <cstring>

#include "difftx/cuda/attention/attention.h"

namespace difftx::cuda {

const char* attention_kernels_name(AttentionKernels kernels) {
  return kernels == AttentionKernels::sm90 ? "sm90 (wgmma)" : "mma (mma.sync)";
}

AttentionKernels select_attention_kernels(int device) {
  const char* forced = std::getenv("DIFFTX_ATTENTION_KERNELS");
  if (forced != nullptr && std::strcmp(forced, "mma") == 0) return AttentionKernels::mma;
  int major = 0, minor = 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) != cudaSuccess) {
    (void)cudaGetLastError();
    return AttentionKernels::mma;
  }
  return major == 9 && minor == 0 ? AttentionKernels::sm90 : AttentionKernels::mma;
}

}  // namespace difftx::cuda
