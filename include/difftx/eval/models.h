// The models an evaluation compares: each --checkpoint (a checkpoint folder, or a run folder whose
// newest complete checkpoint is taken) loaded with its tokenizer onto one backend.
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "difftx/data/tokenizer.h"
#include "difftx/model/backend.h"
#include "difftx/model/model.h"

namespace difftx::eval {

struct EvalModel {
  std::string label;                 // unique among the compared models
  std::filesystem::path checkpoint;  // the resolved checkpoint folder
  ModelConfig config;
  std::int64_t step = 0;
  std::int64_t parameters = 0;
  std::filesystem::path data_path;  // the run config's data.path (empty if none)
  data::Tokenizer tokenizer;
  std::unique_ptr<Model> model;

  // {"label", "checkpoint", "attention", "parameters", "step", "tokenizer", "max_seq_len"}
  nlohmann::json describe() const;
};

// A checkpoint folder (holds model.safetensors) as is; a run folder (holds checkpoints/): its
// newest complete checkpoints/step_NNNNNNN. Throws naming the path otherwise.
std::filesystem::path resolve_checkpoint(const std::filesystem::path& path);

// Loads every checkpoint (resolved as above) onto `backend`, each with its tokenizer.model.
// Labels: "<attention kind> <folder>" ("diff_v1 tiny"), made unique with " #2"... when needed.
std::vector<EvalModel> load_eval_models(const std::vector<std::string>& paths, Backend& backend);

}  // namespace difftx::eval
