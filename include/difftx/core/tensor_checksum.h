// Checksum of a list of named tensors (FNV-1a-64 over names, dtypes, shapes and bytes), stored
// in checkpoint metadata so a flipped bit anywhere in the weights or moments is detected.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "difftx/core/tensor.h"

namespace difftx {

// 16 lowercase hex digits. Tensors may live on any device (copied to the host).
std::string tensors_checksum(const std::vector<std::pair<std::string, Tensor>>& tensors);

}  // namespace difftx
