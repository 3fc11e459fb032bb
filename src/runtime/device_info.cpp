// Device name and peak rate for MFU (see device_info.h).
#include "difftx/runtime/device_info.h"

#include <cstdlib>

#include "difftx/core/error.h"
#ifdef DIFFTX_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace difftx {

std::optional<double> peak_bf16_flops_for(const std::string& name) {
  auto has = [&](const char* part) { return name.find(part) != std::string::npos; };
  // Dense (no sparsity) bf16 tensor-core peaks from the vendors' data sheets.
  if (has("H100") && has("PCIe")) return 756.0e12;
  if (has("H100") && has("NVL")) return 835.0e12;
  if (has("H100") || has("H200") || has("GH200")) return 989.4e12;
  if (has("A100")) return 312.0e12;
  if (has("L40S")) return 362.05e12;
  return std::nullopt;
}

DeviceInfo device_info(const Backend& backend) {
  DeviceInfo info;
  if (backend.device() == Device::cpu) {
    info.name = "cpu";
    return info;
  }
#ifdef DIFFTX_WITH_CUDA
  int device = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&device) == cudaSuccess &&
      cudaGetDeviceProperties(&prop, device) == cudaSuccess) {
    info.name = prop.name;
  }
#endif
  if (info.name.empty()) info.name = backend.name();
  info.peak_flops = peak_bf16_flops_for(info.name);
  if (const char* env = std::getenv("DIFFTX_PEAK_TFLOPS")) {
    char* end = nullptr;
    const double tflops = std::strtod(env, &end);
    if (end == env || *end != '\0' || !(tflops > 0) || tflops > 1e6) {
      fail("DIFFTX_PEAK_TFLOPS='{}' is not a positive number of TFLOP/s (e.g. 989.4)", env);
    }
    info.peak_flops = tflops * 1e12;
  }
  return info;
}

}  // namespace difftx
