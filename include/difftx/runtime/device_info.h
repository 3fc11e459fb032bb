// What the training log needs to know about the device a backend runs on: its name and the
// peak dense bf16 tensor-core rate, the denominator of MFU (model FLOPs utilisation).
#pragma once

#include <optional>
#include <string>

#include "difftx/model/backend.h"

namespace difftx {

struct DeviceInfo {
  std::string name;                  // "cpu", or the GPU's name ("NVIDIA H100 80GB HBM3")
  std::optional<double> peak_flops;  // FLOP/s; unset on the CPU and on GPUs not in the table
};

// For a CUDA backend: the device's name and its dense bf16 peak from a table of data-center
// GPUs (H100/H200 SXM 989.4e12, H100 PCIe 756e12, H100 NVL 835e12, A100 312e12, L40S 362e12),
// or DIFFTX_PEAK_TFLOPS (a number of TFLOP/s) when that environment variable is set. The CPU
// has no peak (MFU is a GPU figure).
DeviceInfo device_info(const Backend& backend);

// The table lookup on its own, by device name (nullopt if not listed).
std::optional<double> peak_bf16_flops_for(const std::string& device_name);

}  // namespace difftx
