// Which kernel family the attention launchers use on the current device: the Hopper wgmma kernels
// (compute capability 9.0, built for sm_90a) or the portable mma.sync kernels. The environment
// variable DIFFTX_ATTENTION_KERNELS=mma forces the portable ones (tests run both).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdlib>
#include <cstring>

namespace difftx::cuda::attn {

inline bool env_is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v != nullptr && std::strcmp(v, value) == 0;
}

inline bool use_sm90_kernels() {
  if (env_is("DIFFTX_ATTENTION_KERNELS", "mma")) return false;
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess) {
    return false;
  }
  return major == 9 && minor == 0;
}

}  // namespace difftx::cuda::attn
