// Reading the weights of a Hugging Face model folder: model.safetensors, or shards listed by
// model.safetensors.index.json ("weight_map": tensor -> shard file). BF16, F16, F32 and F64
// tensors are converted to f32.
#pragma once

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "difftx/hf/hf_convert.h"

namespace difftx::hf {

struct HfWeights {
  HfTensorSet set;                              // every tensor, f32 on the CPU
  std::map<std::string, std::string> metadata;  // "__metadata__" of the first file read
  std::vector<std::string> files;               // the safetensors files read, in order
};

// Loads every tensor of the folder. Errors (difftx::Error, naming the file and tensor): no
// safetensors weights (with a hint when only PyTorch .bin files exist), an index that is not
// JSON or lacks weight_map, a shard that is missing, a tensor the index places in a shard that
// lacks it, a tensor stored in two files, an integer tensor, and any corrupt safetensors file.
HfWeights load_hf_weights(const std::filesystem::path& dir);

// The shards of model.safetensors.index.json: shard file name -> the tensors it holds. Checks
// the JSON (within the limits of core/json_input.h), that "weight_map" maps names to plain file
// names inside the folder, and that it is not empty; `source` names the index in errors.
using HfShardIndex = std::map<std::string, std::set<std::string>>;
HfShardIndex parse_hf_index(std::string_view text, const std::string& source);

}  // namespace difftx::hf
