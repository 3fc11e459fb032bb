// Training state saved beside each checkpoint (train_state.safetensors): AdamW moments as
// tensors "m.<param>" / "v.<param>" and, in the metadata, the step, the data-loader position,
// the initialisation seed and the NaN-skip counter. Written atomically, apart from the weights.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>

#include "difftx/train/optimizer.h"

namespace difftx {

struct TrainStateMeta {
  int step = 0;                 // optimizer steps completed
  nlohmann::json loader;        // data::LoaderState::to_json()
  std::uint64_t init_seed = 0;
  int skipped_in_a_row = 0;
};

void save_train_state(const std::filesystem::path& file, AdamW& optimizer, const TrainStateMeta& meta);
// Restores the moments into `optimizer` (shapes checked) and returns the metadata.
TrainStateMeta load_train_state(const std::filesystem::path& file, AdamW& optimizer);

// The same file from and into moment sets (one tensor per parameter, named like it, any device):
// data parallelism gathers its sharded moments into such sets on rank 0, and every rank reads
// them back at any world size. `adam_steps` is AdamW's step count.
void save_train_state(const std::filesystem::path& file, const ParamSet& m, const ParamSet& v,
                      int adam_steps, const TrainStateMeta& meta);
TrainStateMeta load_train_state(const std::filesystem::path& file, ParamSet& m, ParamSet& v,
                                int& adam_steps);

}  // namespace difftx
