// Saving and restoring the optimizer moments and loop position (train_state.safetensors),
// validated against the checkpoint it belongs to.
#include "difftx/train/train_state.h"

#include <cmath>
#include <limits>
#include <regex>

#include "difftx/core/error.h"
#include "difftx/core/input_file.h"
#include "difftx/core/json_fields.h"
#include "difftx/core/json_input.h"
#include "difftx/core/safetensors.h"
#include "difftx/core/tensor_checksum.h"
#include "difftx/model/checkpoint.h"

namespace difftx {
namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "difftx-train-state";

// Checks one moment tensor as loaded: stored as F32, finite, and (second moments) >= 0.
void check_moment(const SafetensorsFile& f, const std::string& name, bool second,
                  const std::string& source) {
  for (const auto& e : f.entries) {
    if (e.name == name && e.dtype != "F32") {
      fail(
          "{}: tensor '{}' is stored as {}, difftx stores optimizer moments as F32: the file was "
          "altered; resume from another checkpoint",
          source, name, e.dtype);
    }
  }
  const Tensor& t = f.at(name);
  const float* p = t.data<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    if (!std::isfinite(p[i]) || (second && p[i] < 0)) {
      fail(
          "{}: tensor '{}' holds {} at index {}; {} (the state is corrupt): resume from another "
          "checkpoint",
          source, name, p[i], i,
          second ? "second moments are finite and never negative" : "moments are finite");
    }
  }
}

// The step the checkpoint folder holding `file` stands for: its model.safetensors metadata and
// its name (step_NNNNNNN), where present; both must agree with `step`.
void check_step_against_folder(const fs::path& file, int step, const std::string& source) {
  const fs::path dir = file.parent_path().empty() ? fs::path(".") : file.parent_path();
  const fs::path weights = dir / "model.safetensors";
  if (input_exists(weights)) {
    const SafetensorsHeader header = read_safetensors_header(weights);
    auto it = header.metadata.find("step");
    if (it != header.metadata.end() && it->second != std::to_string(step)) {
      fail(
          "{}: step {} disagrees with the checkpoint's weights ({} says step {}): the files come "
          "from different checkpoints; resume from another checkpoint",
          source, step, weights.string(), text_snippet(it->second));
    }
  }
  std::smatch m;
  const std::string name = fs::absolute(dir).lexically_normal().filename().string();
  if (std::regex_match(name, m, std::regex("step_(\\d{1,10})")) && std::stoll(m[1].str()) != step) {
    fail(
        "{}: step {} disagrees with its folder '{}': the files come from different checkpoints; "
        "resume from another checkpoint",
        source, step, name);
  }
}

}  // namespace

void save_train_state(const std::filesystem::path& file, AdamW& opt, const TrainStateMeta& meta) {
  save_train_state(file, opt.first_moments(), opt.second_moments(), opt.steps_taken(), meta);
}

void save_train_state(const std::filesystem::path& file, const ParamSet& m, const ParamSet& v,
                      int adam_steps, const TrainStateMeta& meta) {
  // Host copies once: checked, checksummed and written from the same bytes.
  auto host = [](const Tensor& t) { return t.device() == Device::cpu ? t : t.to(Device::cpu); };
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (std::size_t i = 0; i < m.size(); ++i) {
    tensors.emplace_back("m." + m.name(i), host(m.tensor(i)));
    tensors.emplace_back("v." + v.name(i), host(v.tensor(i)));
  }
  require_finite_tensors(tensors,
                         fmt::format("non-finite optimizer moments at step {}", meta.step));
  nlohmann::json state = {{"step", meta.step},
                          {"loader", meta.loader},
                          {"init_seed", meta.init_seed},
                          {"skipped_in_a_row", meta.skipped_in_a_row},
                          {"adam_steps", adam_steps}};
  save_safetensors(file, tensors,
                   {{"format", kFormat},
                    {"format_version", std::to_string(kCheckpointFormatVersion)},
                    {"state", state.dump()},
                    {"checksum", tensors_checksum(tensors)}});
}

TrainStateRecord parse_train_state_meta(std::string_view text, const std::string& source) {
  const nlohmann::json state = parse_json(text, source);
  const JsonFields f(state, source,
                     {"step", "loader", "init_seed", "skipped_in_a_row", "adam_steps"},
                     JsonFields::Unknown::reject, JsonFields::Null::is_value,
                     "not a field of a difftx training state");
  constexpr int kMax = std::numeric_limits<int>::max();
  TrainStateRecord record;
  TrainStateMeta& meta = record.meta;
  meta.step = f.integer<int>("step", 0, kMax);
  if (!f.at("loader").is_object()) f.fail_type("loader", "an object");
  meta.loader = f.at("loader");
  meta.init_seed = f.integer<std::uint64_t>("init_seed");
  meta.skipped_in_a_row = f.integer<int>("skipped_in_a_row", 0, kMax);
  // Skipped steps take no optimizer step: at most one per completed step.
  record.adam_steps = f.integer<int>("adam_steps", 0, meta.step);
  return record;
}

TrainStateMeta load_train_state(const std::filesystem::path& file, AdamW& opt) {
  int adam_steps = 0;
  TrainStateMeta meta =
      load_train_state(file, opt.first_moments(), opt.second_moments(), adam_steps);
  opt.set_steps_taken(adam_steps);
  return meta;
}

TrainStateMeta load_train_state(const std::filesystem::path& file, ParamSet& m, ParamSet& v,
                                int& adam_steps) {
  const std::string source = file.string();
  SafetensorsFile f = load_safetensors(file);
  auto format = f.metadata.find("format");
  if (format == f.metadata.end() || format->second != kFormat) {
    fail("{}: metadata 'format' is {}, not \"{}\": not a difftx training state", source,
         format == f.metadata.end() ? "missing" : "'" + text_snippet(format->second) + "'",
         kFormat);
  }
  verify_tensors_checksum(f, source);
  auto it = f.metadata.find("state");
  if (it == f.metadata.end())
    fail("{}: no training state metadata (not a difftx train state)", source);
  const TrainStateRecord record = parse_train_state_meta(it->second, source + " (state)");
  check_step_against_folder(file, record.meta.step, source);

  std::size_t expected = 0;
  for (auto* set : {&m, &v}) {
    const bool second = set == &v;
    const char* prefix = second ? "v." : "m.";
    for (std::size_t i = 0; i < set->size(); ++i) {
      const std::string name = prefix + set->name(i);
      if (!f.contains(name)) fail("{}: tensor '{}' is missing", source, name);
      const Tensor& t = f.at(name);
      Tensor& dst = set->tensor(i);
      if (t.shape() != dst.shape()) {
        fail("{}: tensor '{}' has shape {}, expected {}", source, name, shape_string(t.shape()),
             shape_string(dst.shape()));
      }
      check_moment(f, name, second, source);
      ++expected;
    }
  }
  if (f.tensors.size() != expected) {
    for (const auto& [name, t] : f.tensors) {
      if (name.size() < 2 || (name.compare(0, 2, "m.") != 0 && name.compare(0, 2, "v.") != 0) ||
          !m.contains(name.substr(2))) {
        fail("{}: unexpected tensor '{}' (not a moment of this model's parameters)", source,
             text_snippet(name));
      }
    }
  }
  // Everything checked: only now change the moments.
  for (auto* set : {&m, &v}) {
    const char* prefix = set == &v ? "v." : "m.";
    for (std::size_t i = 0; i < set->size(); ++i) {
      const Tensor& t = f.at(prefix + set->name(i));
      Tensor& dst = set->tensor(i);
      dst.copy_from(t.dtype() == dst.dtype() ? t : t.to_dtype(dst.dtype()));
    }
  }
  adam_steps = record.adam_steps;
  return record.meta;
}

}  // namespace difftx
