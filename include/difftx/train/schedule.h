// Learning-rate schedule: linear warmup, then cosine / linear / constant decay to a floor.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "difftx/core/enum_names.h"

namespace difftx {

// The schedule, as read from the "schedule" object of a run config (see schedule_from_json).
//
// Steps are 0-based optimizer steps; a run of `total_steps` steps uses steps 0 .. total_steps-1.
//   warmup (step < warmup_steps):  lr * (step + 1) / warmup_steps
//     so the first step already trains (lr / warmup_steps) and step warmup_steps-1 reaches lr.
//   decay  (warmup_steps <= step <= total_steps), with
//     progress = (step - warmup_steps) / (total_steps - warmup_steps) in [0, 1]:
//       cosine:   min_lr + (lr - min_lr) * (1 + cos(pi * progress)) / 2
//       linear:   lr + (min_lr - lr) * progress
//       constant: lr (min_lr is not used)
//     so the decay starts at lr and reaches min_lr exactly at step == total_steps.
//   after (step > total_steps): min_lr (constant: lr).
// With warmup_steps == total_steps there is no decay phase: step total_steps and later give
// min_lr (constant: lr).
struct ScheduleConfig {
  enum class Decay { cosine, linear, constant };

  double lr = 0.0;       // peak learning rate, > 0
  double min_lr = 0.0;   // floor reached at total_steps, 0 <= min_lr <= lr
  int warmup_steps = 0;  // >= 0, <= total_steps
  int total_steps = 0;   // > 0
  Decay decay = Decay::cosine;
};

inline constexpr EnumTable<ScheduleConfig::Decay, 3> kDecays{
    {{ScheduleConfig::Decay::cosine, "cosine"},
     {ScheduleConfig::Decay::linear, "linear"},
     {ScheduleConfig::Decay::constant, "constant"}}};

// "cosine", "linear" or "constant".
const char* decay_name(ScheduleConfig::Decay decay);

// Learning rate for 0-based `step` (>= 0). The config must be valid (see validate_schedule).
double learning_rate(const ScheduleConfig& config, int step);

// Checks every invariant; throws difftx::Error naming `source` and the field.
void validate_schedule(const ScheduleConfig& config, const std::string& source);

// Parses and validates a schedule object:
//   {"lr": 3e-4, "min_lr": 3e-5, "warmup_steps": 200, "total_steps": 5000, "decay": "cosine"}
// Required: lr, total_steps. Optional: min_lr (default 0), warmup_steps (default 0),
// decay (default "cosine"), comment (ignored string). Unknown fields, wrong types, negative
// or non-finite values and warmup_steps > total_steps throw difftx::Error naming `source`
// and the field.
ScheduleConfig schedule_from_json(const nlohmann::json& j, const std::string& source);

// The inverse of schedule_from_json (every field written explicitly).
nlohmann::json schedule_to_json(const ScheduleConfig& config);

}  // namespace difftx
