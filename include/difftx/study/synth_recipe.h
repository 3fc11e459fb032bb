// A study data set made by `difftx data synth`: the spec's "synth" object names the kind and
// the generator's options by the command's option names with '_' for '-' (docs/study.md):
//   {"kind": "mqar", "vocab": 8192, "seq_len": 256, "pairs": 64, "noise": true,
//    "test_seq_len": 512, "test_pairs": 64, "train_examples": 20000, "seed": 1}
//   {"kind": "needle-mix", "context": 2048, "needle_fraction": 0.5, "digits": 5, ...}
// Unknown options are refused with the list of known ones.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "difftx/core/progress.h"
#include "difftx/study/dataset.h"

namespace difftx::study {

// Generates the data set into `out` (which must not exist yet). `where` names the recipe in
// errors ("spec.json: datasets \"p64\" synth").
void run_synth_recipe(const nlohmann::json& recipe, const std::filesystem::path& out,
                      ProgressMode progress, const std::string& where);

// What the recipe's folder will hold (vocabulary, split layouts, meta.json's task) computed from
// its options alone, so a study can check every run before generating anything. Validates the
// options like run_synth_recipe.
DatasetInfo predict_synth_dataset(const nlohmann::json& recipe, const std::filesystem::path& dir,
                                  const std::string& dataset);

}  // namespace difftx::study
