// Learning-rate schedule: evaluation, validation and JSON (de)serialisation.
#include "difftx/train/schedule.h"

#include <cmath>
#include <limits>
#include <numbers>

#include "difftx/core/error.h"
#include "difftx/core/json_fields.h"

namespace difftx {
using nlohmann::json;

const char* decay_name(ScheduleConfig::Decay decay) {
  return enum_name(kDecays, decay);
}

double learning_rate(const ScheduleConfig& c, int step) {
  if (step < 0) fail("learning_rate: step must be >= 0, got {}", step);
  if (step < c.warmup_steps) {
    return c.lr * static_cast<double>(step + 1) / static_cast<double>(c.warmup_steps);
  }
  if (c.decay == ScheduleConfig::Decay::constant) return c.lr;
  if (step >= c.total_steps) return c.min_lr;
  // warmup_steps <= step < total_steps, so the denominator is positive.
  double progress = static_cast<double>(step - c.warmup_steps) /
                    static_cast<double>(c.total_steps - c.warmup_steps);
  if (c.decay == ScheduleConfig::Decay::linear) return c.lr + (c.min_lr - c.lr) * progress;
  return c.min_lr + (c.lr - c.min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

void validate_schedule(const ScheduleConfig& c, const std::string& source) {
  if (!std::isfinite(c.lr) || !(c.lr > 0)) {
    fail("{}: field 'lr' must be a positive finite number, got {}", source, c.lr);
  }
  if (!std::isfinite(c.min_lr) || c.min_lr < 0) {
    fail("{}: field 'min_lr' must be a finite number >= 0, got {}", source, c.min_lr);
  }
  if (c.min_lr > c.lr) {
    fail("{}: field 'min_lr' ({}) must not exceed 'lr' ({})", source, c.min_lr, c.lr);
  }
  if (c.total_steps <= 0)
    fail("{}: field 'total_steps' must be positive, got {}", source, c.total_steps);
  if (c.warmup_steps < 0)
    fail("{}: field 'warmup_steps' must be >= 0, got {}", source, c.warmup_steps);
  if (c.warmup_steps > c.total_steps) {
    fail("{}: field 'warmup_steps' ({}) must not exceed 'total_steps' ({})", source, c.warmup_steps,
         c.total_steps);
  }
}

ScheduleConfig schedule_from_json(const json& j, const std::string& source) {
  const JsonFields f(j, source, {"lr", "min_lr", "warmup_steps", "total_steps", "decay"},
                     JsonFields::Unknown::reject, JsonFields::Null::is_value,
                     "a schedule has lr, min_lr, warmup_steps, total_steps, decay");
  constexpr int kMax = std::numeric_limits<int>::max();
  ScheduleConfig c;
  c.lr = f.number("lr");
  c.min_lr = f.number_or("min_lr", 0.0);
  c.warmup_steps = f.integer_or<int>("warmup_steps", 0, 0, kMax);
  c.total_steps = f.integer<int>("total_steps", 1, kMax);
  c.decay = f.choice_or("decay", kDecays, ScheduleConfig::Decay::cosine);
  validate_schedule(c, source);
  return c;
}

json schedule_to_json(const ScheduleConfig& c) {
  return json{{"lr", c.lr},
              {"min_lr", c.min_lr},
              {"warmup_steps", c.warmup_steps},
              {"total_steps", c.total_steps},
              {"decay", decay_name(c.decay)}};
}

}  // namespace difftx
