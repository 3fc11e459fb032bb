// Checksum of a list of named tensors (over names, dtypes, shapes and bytes), stored in the
// metadata of difftx-written safetensors files (checkpoints, training state) so that a flipped
// bit anywhere in the weights or moments is detected. Format 2 files use XXH3-64 through the one
// checksum of core (core/checksum.h); legacy files (no format version) used FNV-1a-64 and stay
// readable.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "difftx/core/tensor.h"

namespace difftx {

enum class TensorChecksum {
  fnv1a64,  // legacy difftx files (no "format_version" in the metadata): 16 bare hex digits
  xxh3_64,  // format version 2 and later: "xxh3-64:" and 16 hex digits (checksum_text)
};

// Tensors may live on any device (copied to the host).
std::string tensors_checksum(const std::vector<std::pair<std::string, Tensor>>& tensors,
                             TensorChecksum algorithm = TensorChecksum::xxh3_64);

}  // namespace difftx
