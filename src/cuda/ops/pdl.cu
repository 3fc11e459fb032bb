// Whether programmatic dependent launches are used (see pdl.cuh).
#include <cstdlib>
#include <cstring>

#include "pdl.cuh"

namespace difftx::cuda {

bool pdl_enabled() {
  static const bool enabled = [] {
    const char* env = std::getenv("DIFFTX_PDL");
    if (env && std::strcmp(env, "0") == 0) return false;
    int device = 0, major = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
      return false;
    }
    return major >= 9;
  }();
  return enabled;
}

}  // namespace difftx::cuda
