// A run config as the command line asks for it: the file, then the options that override
// its fields (--steps, --device, --out, --data, and any field with --set section.field=value),
// read and validated by the same reader as the file (RunConfig::from_json), so an override is
// typed and range-checked exactly like the field written in the file.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "difftx/train/run_config.h"

namespace difftx {

struct ConfigOverrides {
  std::optional<int> steps;           // --steps: train.steps, and the schedule's horizon
  std::optional<std::string> device;  // --device: train.device
  std::optional<std::string> out;     // --out: output.dir
  std::optional<std::string> data;    // --data: data.path
  std::vector<std::string> set;       // --set section.field=value, in order, applied last
};

struct LoadedRunConfig {
  RunConfig config;
  std::vector<std::string> notes;  // adjustments worth telling the user (printed by the CLI)
};

// Reads `file`, applies `overrides` to its JSON (so defaults that follow other fields, like
// schedule.total_steps following train.steps, still follow them) and validates the result.
//
// --steps N (N >= 1): train.steps = N; schedule.total_steps = N when the file sets it; when
// schedule.warmup_steps is not shorter than N, the warmup is scaled to keep its share of the
// file's run (a note says so), so a short run still decays instead of being all warmup.
// --set values: JSON (numbers, true/false, quoted strings) or, for string fields and text that
// is not JSON, the text itself. Errors name the option, the field and the file; a bare model
// object (what `model match` writes for a bare model config) is refused with a hint.
LoadedRunConfig load_run_config(const std::filesystem::path& file,
                                const ConfigOverrides& overrides);

// Applies one "section.field=value" assignment to a run config's JSON.
void apply_set_override(nlohmann::json& run_json, const std::string& assignment);

}  // namespace difftx
