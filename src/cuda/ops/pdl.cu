// Whether programmatic dependent launches are used (see pdl.cuh).
#include <cstdlib>
#include <cstring>
#include <string>

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

bool pdl_enabled(const char* op) {
  static const std::string off = [] {  // ",a,b," or empty ('+' separates names too)
    const char* env = std::getenv("DIFFTX_PDL_OFF");
    std::string names = env && *env ? std::string(",") + env + "," : std::string();
    for (char& c : names) c = c == '+' ? ',' : c;
    return names;
  }();
  if (!pdl_enabled()) return false;
  return off.empty() || off.find(std::string(",") + op + ",") == std::string::npos;
}

}  // namespace difftx::cuda
