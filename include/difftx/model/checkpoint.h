// Model checkpoints on disk: a folder holding model.safetensors (parameters by the names of
// params.h, f32), config.json (the run config; its "model" object is the ModelConfig) and
// tokenizer.model (the SentencePiece model the token ids refer to). Training state (optimizer
// moments, step, RNG, data position) lives apart, in train_state.* (src/train).
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>

#include "difftx/model/config.h"
#include "difftx/model/params.h"

namespace difftx {

struct ModelCheckpoint {
  ModelConfig config;
  nlohmann::json run_config;            // whole config.json
  ParamSet params;                      // CPU f32, every tensor of parameter_specs(config)
  std::filesystem::path tokenizer;      // <dir>/tokenizer.model, empty if the folder has none
  std::int64_t step = 0;                // from the safetensors metadata ("step")
};

// Writes the three files atomically into `dir` (created if missing). `run_config` must contain
// "model"; `tokenizer` may be empty (no tokenizer copied).
void save_model_checkpoint(const std::filesystem::path& dir, const nlohmann::json& run_config,
                           const ModelConfig& config, const ParamSet& params,
                           const std::filesystem::path& tokenizer, std::int64_t step);

// Loads and validates: missing files, a config that does not parse, missing/extra/misshapen
// tensors, non-finite values: each a difftx::Error naming the file and the tensor.
ModelCheckpoint load_model_checkpoint(const std::filesystem::path& dir);

}  // namespace difftx
