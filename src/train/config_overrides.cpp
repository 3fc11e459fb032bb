// Command-line overrides of run-config fields (see config_overrides.h).
#include "difftx/train/config_overrides.h"

#include <fmt/format.h>

#include <cmath>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"

namespace difftx {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kSections[] = {"model", "data", "optim", "schedule", "train", "output"};

bool known_section(const std::string& name) {
  for (const char* s : kSections) {
    if (name == s) return true;
  }
  return false;
}

// Whether the field holds a string in the defaults (so "--set data.path=2024" stays text).
bool string_field(const std::string& section, const std::string& field) {
  static const json defaults = [] {
    json j = RunConfig{}.to_json();
    j["model"]["attention"] = "diff_v1";
    j["model"]["rope_style"] = "interleaved";
    return j;
  }();
  return defaults.contains(section) && defaults[section].contains(field) &&
         defaults[section][field].is_string();
}

json& section_of(json& run, const std::string& name) {
  if (!run.contains(name)) run[name] = json::object();
  json& s = run[name];
  if (!s.is_object()) fail("section \"{}\" of the run config is not a JSON object", name);
  return s;
}

json read_json_file(const fs::path& file) {
  try {
    return json::parse(read_file_text(file));
  } catch (const json::parse_error& e) {
    fail("{}: not valid JSON: {}", file.string(), e.what());
  }
}

}  // namespace

void apply_set_override(json& run, const std::string& assignment) {
  const std::size_t eq = assignment.find('=');
  if (eq == std::string::npos) {
    fail("--set '{}': expected section.field=value (e.g. --set schedule.lr=1e-3)", assignment);
  }
  const std::string key = assignment.substr(0, eq);
  const std::string text = assignment.substr(eq + 1);
  const std::size_t dot = key.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == key.size() ||
      key.find('.', dot + 1) != std::string::npos) {
    fail("--set '{}': the name must be section.field (e.g. train.steps), got '{}'", assignment,
         key);
  }
  const std::string section = key.substr(0, dot), field = key.substr(dot + 1);
  if (!known_section(section)) {
    fail(
        "--set '{}': unknown section '{}' (sections: model, data, optim, schedule, train, output; "
        "fields: docs/config.md)",
        assignment, section);
  }
  json value;
  if (string_field(section, field)) {
    // Text as it is, or a quoted JSON string unquoted ("--set 'output.dir=\"a b\"'").
    value = text;
    try {
      const json parsed = json::parse(text);
      if (parsed.is_string()) value = parsed;
    } catch (const json::parse_error&) {
    }
  } else {
    try {
      value = json::parse(text);
    } catch (const json::parse_error&) {
      value = text;  // not JSON: a bare word, typed as a string (the reader says if it must not be)
    }
  }
  section_of(run, section)[field] = value;
}

LoadedRunConfig load_run_config(const fs::path& file, const ConfigOverrides& o) {
  json j = read_json_file(file);
  if (j.is_object() && !j.contains("model") && (j.contains("attention") || j.contains("d_model"))) {
    fail(
        "{} is a model config (a bare \"model\" object), not a run config: put it under \"model\" "
        "in a run file (see configs/tiny.json), or write one with `difftx model match --config "
        "RUN.json --out FILE` from a run config",
        file.string());
  }
  if (!j.is_object()) fail("{}: a run config must be a JSON object", file.string());
  LoadedRunConfig loaded;
  if (o.steps) {
    const int n = *o.steps;
    if (n < 1) fail("--steps must be at least 1, got {}", n);
    // The file's own length, for scaling the warmup; RunConfig::from_json validates it below.
    int file_steps = n;
    if (j.contains("train") && j["train"].is_object() && j["train"].contains("steps") &&
        j["train"]["steps"].is_number_integer()) {
      file_steps = j["train"]["steps"].get<int>();
    }
    section_of(j, "train")["steps"] = n;
    json& sched = section_of(j, "schedule");
    if (sched.contains("total_steps")) sched["total_steps"] = n;
    if (sched.contains("warmup_steps") && sched["warmup_steps"].is_number_integer()) {
      const int warmup = sched["warmup_steps"].get<int>();
      if (warmup >= n && warmup > 0) {
        const double share = file_steps > 0 ? double(warmup) / double(file_steps) : 0.0;
        const int scaled = std::clamp(int(std::lround(share * n)), 0, n - 1);
        sched["warmup_steps"] = scaled;
        loaded.notes.push_back(fmt::format(
            "--steps {}: schedule.warmup_steps {} would make the whole run warmup; scaled to {} "
            "(its share of the file's {} steps); set it with --set schedule.warmup_steps=N",
            n, warmup, scaled, file_steps));
      }
    }
  }
  if (o.device) section_of(j, "train")["device"] = *o.device;
  if (o.out) section_of(j, "output")["dir"] = *o.out;
  if (o.data) section_of(j, "data")["path"] = *o.data;
  for (const auto& assignment : o.set) apply_set_override(j, assignment);
  const std::string name = o.set.empty() ? file.string() : file.string() + " with --set";
  loaded.config = RunConfig::from_json(j, name);
  return loaded;
}

}  // namespace difftx
