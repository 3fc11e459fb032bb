// Checksum of a list of named tensors (XXH3-64, core/checksum.h, over names, dtypes, shapes and
// bytes), stored in checkpoint metadata so a flipped bit anywhere in the weights or moments is
// detected.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "difftx/core/tensor.h"

namespace difftx {

// "xxh3-64:" and 16 lowercase hex digits (checksum_text). Tensors may live on any device
// (copied to the host). A stored value for which is_legacy_checksum_text() holds was written
// by a difftx of before XXH3 (FNV-1a) and cannot match.
std::string tensors_checksum(const std::vector<std::pair<std::string, Tensor>>& tensors);

}  // namespace difftx
