// Learning-rate schedule: evaluation, validation and JSON (de)serialisation.
#include "difftx/train/schedule.h"

#include <cmath>
#include <numbers>
#include <set>

#include "difftx/core/error.h"

namespace difftx {
using nlohmann::json;

const char* decay_name(ScheduleConfig::Decay decay) {
  switch (decay) {
    case ScheduleConfig::Decay::cosine: return "cosine";
    case ScheduleConfig::Decay::linear: return "linear";
    case ScheduleConfig::Decay::constant: return "constant";
  }
  return "?";
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
  if (c.total_steps <= 0) fail("{}: field 'total_steps' must be positive, got {}", source, c.total_steps);
  if (c.warmup_steps < 0) fail("{}: field 'warmup_steps' must be >= 0, got {}", source, c.warmup_steps);
  if (c.warmup_steps > c.total_steps) {
    fail("{}: field 'warmup_steps' ({}) must not exceed 'total_steps' ({})", source, c.warmup_steps,
         c.total_steps);
  }
}

namespace {

const std::set<std::string> kKnownFields = {"lr", "min_lr", "warmup_steps", "total_steps", "decay",
                                            "comment"};

double get_number(const json& j, const char* key, const std::string& source, bool required,
                  double fallback) {
  if (!j.contains(key)) {
    if (required) fail("{}: missing required field '{}'", source, key);
    return fallback;
  }
  const json& v = j.at(key);
  if (!v.is_number()) {
    fail("{}: field '{}' must be a number, got {} ({})", source, key, v.dump(), v.type_name());
  }
  return v.get<double>();
}

int get_int(const json& j, const char* key, const std::string& source, bool required, int fallback) {
  if (!j.contains(key)) {
    if (required) fail("{}: missing required field '{}'", source, key);
    return fallback;
  }
  const json& v = j.at(key);
  if (!v.is_number_integer()) {
    fail("{}: field '{}' must be an integer, got {} ({})", source, key, v.dump(), v.type_name());
  }
  if (v.is_number_unsigned()) {
    auto x = v.get<unsigned long long>();
    if (x > 2147483647ULL) fail("{}: field '{}' is out of range: {}", source, key, x);
    return static_cast<int>(x);
  }
  auto x = v.get<long long>();
  if (x < -2147483647LL || x > 2147483647LL) fail("{}: field '{}' is out of range: {}", source, key, x);
  return static_cast<int>(x);
}

}  // namespace

ScheduleConfig schedule_from_json(const json& j, const std::string& source) {
  if (!j.is_object()) fail("{}: a schedule must be a JSON object, got {}", source, j.type_name());
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!kKnownFields.count(it.key())) {
      fail("{}: unknown field '{}' (a schedule has lr, min_lr, warmup_steps, total_steps, decay)",
           source, it.key());
    }
  }
  if (j.contains("comment") && !j.at("comment").is_string()) {
    fail("{}: field 'comment' must be a string, got {} ({})", source, j.at("comment").dump(),
         j.at("comment").type_name());
  }
  ScheduleConfig c;
  c.lr = get_number(j, "lr", source, true, 0.0);
  c.min_lr = get_number(j, "min_lr", source, false, 0.0);
  c.warmup_steps = get_int(j, "warmup_steps", source, false, 0);
  c.total_steps = get_int(j, "total_steps", source, true, 0);
  if (j.contains("decay")) {
    const json& v = j.at("decay");
    if (!v.is_string()) {
      fail("{}: field 'decay' must be a string, got {} ({})", source, v.dump(), v.type_name());
    }
    const std::string name = v.get<std::string>();
    if (name == "cosine") c.decay = ScheduleConfig::Decay::cosine;
    else if (name == "linear") c.decay = ScheduleConfig::Decay::linear;
    else if (name == "constant") c.decay = ScheduleConfig::Decay::constant;
    else fail("{}: field 'decay' must be \"cosine\", \"linear\" or \"constant\", got \"{}\"", source, name);
  }
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
