// Model checkpoints on disk: a folder holding model.safetensors (parameters by the names of
// params.h, f32), config.json (the run config; its "model" object is the ModelConfig) and
// tokenizer.model (the SentencePiece model the token ids refer to). Training state (optimizer
// moments, step, RNG, data position) lives apart, in train_state.* (src/train).
//
// model.safetensors metadata: "format" "difftx", "format_version" (2; absent in legacy files,
// read as 1), "step", "attention" and "checksum" (core/tensor_checksum.h: XXH3-64 from version 2,
// FNV-1a-64 before), which is required: a file without it is refused.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "difftx/core/safetensors.h"
#include "difftx/model/config.h"
#include "difftx/model/params.h"

namespace difftx {

inline constexpr std::int64_t kCheckpointFormatVersion = 2;

struct ModelCheckpoint {
  ModelConfig config;
  nlohmann::json run_config;        // whole config.json
  ParamSet params;                  // CPU f32, every tensor of parameter_specs(config)
  std::filesystem::path tokenizer;  // <dir>/tokenizer.model, empty if the folder has none
  std::int64_t step = 0;            // from the safetensors metadata ("step")
};

// Writes the three files atomically into `dir` (created if missing). `run_config` must contain
// "model"; `tokenizer` may be empty (no tokenizer copied). Refuses (difftx::Error, nothing
// written) parameters holding NaN or infinity.
void save_model_checkpoint(const std::filesystem::path& dir, const nlohmann::json& run_config,
                           const ModelConfig& config, const ParamSet& params,
                           const std::filesystem::path& tokenizer, std::int64_t step);

// Loads and validates: missing files (or not regular files), a config that does not parse, a
// format other than "difftx" or newer than this build, a missing or wrong checksum, a step that
// is not a non-negative integer, weights of another attention kind, missing/extra/misshapen
// tensors, tensors not stored as F32, non-finite values: each a difftx::Error naming the file
// and the tensor.
ModelCheckpoint load_model_checkpoint(const std::filesystem::path& dir);

// Shared by every difftx-written safetensors file (model weights, training state):
// The format version of a file's metadata (1 when absent); newer than this build: error.
std::int64_t checkpoint_format_version(const std::map<std::string, std::string>& metadata,
                                       const std::string& source);
// Requires metadata "checksum" and checks it against the tensors (algorithm by version).
void verify_tensors_checksum(const SafetensorsFile& file, const std::string& source);
// Throws "refusing to save <what>: tensor 'x' holds nan at index i; ..." for the first non-finite
// value of a floating-point tensor (any device).
void require_finite_tensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                            const std::string& what);

}  // namespace difftx
