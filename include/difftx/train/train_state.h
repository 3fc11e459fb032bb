// Training state saved beside each checkpoint (train_state.safetensors): AdamW moments as
// tensors "m.<param>" / "v.<param>" (F32) and, in the metadata, the format ("difftx-train-state",
// format_version), a required checksum of the moments, and the "state" JSON: step, data-loader
// position, initialisation seed, NaN-skip counter and optimizer steps taken. Written atomically,
// apart from the weights.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "difftx/train/optimizer.h"

namespace difftx {

struct TrainStateMeta {
  int step = 0;           // optimizer steps completed
  nlohmann::json loader;  // data::LoaderState::to_json()
  std::uint64_t init_seed = 0;
  int skipped_in_a_row = 0;
};

// Refuses (difftx::Error, nothing written) moments holding NaN or infinity.
void save_train_state(const std::filesystem::path& file, AdamW& optimizer,
                      const TrainStateMeta& meta);

// Restores the moments into `optimizer` and returns the metadata, after checking everything
// (the optimizer is untouched on error): format and checksum; the state's fields (integers in
// range, adam_steps <= step); that its step agrees with the checkpoint folder (model.safetensors'
// step, a step_NNNNNNN folder name); moments present, of the optimizer's shapes, stored as F32,
// finite, second moments >= 0; no other tensors.
TrainStateMeta load_train_state(const std::filesystem::path& file, AdamW& optimizer);

// The "state" metadata JSON alone (the fuzz harness' entry); `source` names it in errors.
struct TrainStateRecord {
  TrainStateMeta meta;
  int adam_steps = 0;  // optimizer steps taken (skipped steps take none)
};
TrainStateRecord parse_train_state_meta(std::string_view text, const std::string& source);

// The same file from and into moment sets (one tensor per parameter, named like it, any device),
// with the same checks: data parallelism gathers its sharded moments into such sets on rank 0,
// and every rank reads them back at any world size. `adam_steps` is AdamW's step count.
void save_train_state(const std::filesystem::path& file, const ParamSet& m, const ParamSet& v,
                      int adam_steps, const TrainStateMeta& meta);
TrainStateMeta load_train_state(const std::filesystem::path& file, ParamSet& m, ParamSet& v,
                                int& adam_steps);

}  // namespace difftx
