// Picks a backend by device name: "cpu" (fp32 CPU backend) or "cuda" (bf16 CUDA backend, only
// in builds made with the cuda preset).
#pragma once

#include <memory>
#include <string>

#include "difftx/model/backend.h"

namespace difftx {

std::unique_ptr<Backend> make_backend(const std::string& device);

}  // namespace difftx
