// Reading and validating study specs (see spec.h; fields in docs/study.md).
#include "difftx/study/spec.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "difftx/core/atomic_file.h"
#include "difftx/core/checksum.h"
#include "difftx/core/error.h"
#include "difftx/eval/needle.h"
#include "json_fields.h"

namespace difftx::study {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Fields the study sets itself in every run: an override of one of them is a mistake.
void refuse_study_owned(const json& run, const std::string& where) {
  struct Owned {
    const char* section;
    const char* field;
    const char* why;
  };
  static const Owned owned[] = {
      {"data", "path", "the data comes from the spec's \"datasets\""},
      {"data", "seed", "seeds come from the spec's \"seeds\""},
      {"train", "seed", "seeds come from the spec's \"seeds\""},
      {"train", "device", "the device is the spec's \"device\" or `difftx study --device`"},
      {"output", "dir", "each run's folder is made under `difftx study --out`"}};
  for (const Owned& o : owned) {
    if (run.contains(o.section) && run.at(o.section).is_object() &&
        run.at(o.section).contains(o.field)) {
      fail("{}: remove {}.{}: {}", where, o.section, o.field, o.why);
    }
  }
}

json run_overrides(const Fields& f, const std::string& where) {
  json run = f.object("run");
  refuse_study_owned(run, where + " run");
  return run;
}

std::vector<std::string> splits(const Fields& f, const char* key) {
  std::vector<std::string> out;
  for (const json& v : f.array(key, true)) {
    if (!v.is_string() || (v != "val" && v != "test")) {
      fail("{}: field '{}' lists {}: splits are \"val\" and \"test\"", f.where(), key, v.dump());
    }
    if (std::find(out.begin(), out.end(), v.get<std::string>()) != out.end()) {
      fail("{}: field '{}' lists {} twice", f.where(), key, v.dump());
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

// A non-empty list of distinct whole numbers in [min, max].
std::vector<int> int_list(const Fields& f, const char* key, int min, int max,
                          std::vector<int> fallback) {
  if (!f.has(key)) return fallback;
  std::vector<int> out;
  for (const json& v : f.array(key, true)) {
    if (!v.is_number_integer() || v.get<std::int64_t>() < min || v.get<std::int64_t>() > max) {
      fail("{}: field '{}' lists {}: give whole numbers in [{}, {}]", f.where(), key, v.dump(), min,
           max);
    }
    if (std::find(out.begin(), out.end(), v.get<int>()) != out.end()) {
      fail("{}: field '{}' lists {} twice", f.where(), key, v.dump());
    }
    out.push_back(v.get<int>());
  }
  return out;
}

NeedleEvalSpec parse_needle(const json& j, const std::string& where) {
  const Fields f(j, where, {"lengths", "depths", "needles", "samples"});
  NeedleEvalSpec n;
  n.enabled = true;
  if (!f.has("lengths")) {
    fail("{}: missing required field 'lengths' (prompt lengths in tokens, e.g. [1024, 4096])",
         where);
  }
  n.lengths = int_list(f, "lengths", 16, 1 << 20, {});
  n.depths = int_list(f, "depths", 0, 100, n.depths);
  n.configs = f.string("needles", false, n.configs);
  try {
    (void)eval::parse_needle_configs(n.configs);
  } catch (const Error& e) {
    fail("{}: field 'needles' is \"{}\": {} (N:R pairs, e.g. \"1:1,2:1\")", where, n.configs,
         e.what());
  }
  n.samples = f.integer("samples", n.samples, 1);
  return n;
}

OutlierEvalSpec parse_outliers(const json& j, const std::string& where) {
  const Fields f(j, where, {"tokens", "context", "batch"});
  OutlierEvalSpec o;
  o.enabled = true;
  o.tokens = f.whole("tokens", o.tokens, 1);
  o.context = f.integer("context", o.context, 0);
  o.batch = f.integer("batch", o.batch, 1);
  return o;
}

QuantEvalSpec parse_quant(const json& j, const std::string& where) {
  const Fields f(j, where, {"bits", "per_head", "tokens", "context", "batch"});
  QuantEvalSpec q;
  q.enabled = true;
  q.bits = int_list(f, "bits", 2, 16, q.bits);
  if (std::find(q.bits.begin(), q.bits.end(), 16) == q.bits.end()) {
    q.bits.insert(q.bits.begin(), 16);  // the unquantized loss every delta is taken against
  }
  std::sort(q.bits.rbegin(), q.bits.rend());
  q.per_head = f.boolean("per_head", q.per_head);
  q.tokens = f.whole("tokens", q.tokens, 1);
  q.context = f.integer("context", q.context, 0);
  q.batch = f.integer("batch", q.batch, 1);
  return q;
}

EvaluationSpec parse_evaluations(const json& j, const std::string& where) {
  EvaluationSpec e;
  const Fields f(j, where,
                 {"loss", "accuracy", "batch_size", "scaling_fit", "needle", "outliers",
                  "quant_logits", "seed"});
  e.eval_batch_size = f.integer("batch_size", 0, 1);
  e.eval_seed = f.whole("seed", e.eval_seed, 0);
  if (f.has("needle")) e.needle = parse_needle(f.at("needle"), where + ".needle");
  if (f.has("outliers")) e.outliers = parse_outliers(f.at("outliers"), where + ".outliers");
  if (f.has("quant_logits")) {
    e.quant_logits = parse_quant(f.at("quant_logits"), where + ".quant_logits");
  }
  if (f.has("loss")) {
    const Fields loss(f.at("loss"), where + ".loss", {"splits"});
    e.loss_splits = splits(loss, "splits");
  }
  if (f.has("accuracy")) {
    const Fields acc(f.at("accuracy"), where + ".accuracy", {"splits", "max_batches"});
    e.accuracy_splits = splits(acc, "splits");
    e.accuracy_max_batches = acc.integer("max_batches", 0, 0);
  }
  if (f.has("scaling_fit")) {
    const Fields fit(f.at("scaling_fit"), where + ".scaling_fit", {"min_token_fraction", "tokens"});
    e.scaling_fit = true;
    e.fit_min_token_fraction = fit.number("min_token_fraction", 0.25);
    if (!(e.fit_min_token_fraction >= 0 && e.fit_min_token_fraction <= 1)) {
      fail("{}.scaling_fit: field 'min_token_fraction' must be in [0, 1], got {}", where,
           e.fit_min_token_fraction);
    }
    e.fit_tokens = fit.boolean("tokens", true);
  }
  return e;
}

template <typename T>
void check_unique(const std::vector<T>& items, const std::string& where, const char* what) {
  std::set<std::string> names, slugs;
  for (const T& item : items) {
    if (!names.insert(item.name).second)
      fail("{}: two {} are named \"{}\"", where, what, item.name);
    if (item.slug.empty()) {
      fail("{}: {} name \"{}\" has no letter or digit to name its folder", where, what, item.name);
    }
    if (!slugs.insert(item.slug).second) {
      fail("{}: {} \"{}\" would share the folder name \"{}\" with another: rename one", where, what,
           item.name, item.slug);
    }
  }
}

}  // namespace

std::string slugify(const std::string& name) {
  std::string out;
  bool dash = false;
  for (unsigned char c : name) {
    if (std::isalnum(c)) {
      if (dash && !out.empty()) out += '-';
      out += static_cast<char>(std::tolower(c));
      dash = false;
    } else {
      dash = true;
    }
  }
  return out;
}

void merge_json(json& target, const json& patch) {
  if (!patch.is_object() || !target.is_object()) {
    target = patch;
    return;
  }
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    if (target.contains(it.key())) {
      merge_json(target[it.key()], it.value());
    } else {
      target[it.key()] = it.value();
    }
  }
}

std::size_t StudySpec::arm_index(const std::string& arm) const {
  for (std::size_t i = 0; i < arms.size(); ++i) {
    if (arms[i].name == arm) return i;
  }
  fail("{}: no arm is named \"{}\"", source_name, arm);
}

std::string StudySpec::fingerprint() const {
  return fmt::format("{:016x}", checksum64(source.dump()));
}

StudySpec parse_study_spec(const json& j, const std::string& source_name) {
  StudySpec s;
  s.source = j;
  s.source_name = source_name;
  const Fields top(j, source_name,
                   {"study", "description", "expected_wall_time", "device", "seeds", "confidence",
                    "baseline", "base_run", "datasets", "sizes", "arms", "evaluations"});
  s.name = top.string("study", true);
  if (slugify(s.name) != s.name) {
    fail(
        "{}: field 'study' must be lower-case letters, digits and single dashes (e.g. \"{}\"), "
        "got \"{}\"",
        source_name, slugify(s.name), s.name);
  }
  s.description = top.string("description", false);
  s.expected_wall_time = top.string("expected_wall_time", true);
  s.device = top.string("device", false, "cpu");
  if (s.device != "cpu" && s.device != "cuda") {
    fail("{}: field 'device' must be \"cpu\" or \"cuda\", got \"{}\"", source_name, s.device);
  }
  s.confidence = top.number("confidence", 0.95);
  if (!(s.confidence > 0 && s.confidence < 1)) {
    fail("{}: field 'confidence' must be in (0, 1), e.g. 0.95, got {}", source_name, s.confidence);
  }

  std::set<std::uint64_t> seen;
  for (const json& v : top.array("seeds", true)) {
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0) {
      fail("{}: field 'seeds' must hold whole numbers >= 0, got {}", source_name, v.dump());
    }
    if (!seen.insert(v.get<std::uint64_t>()).second) {
      fail("{}: field 'seeds' lists {} twice: each seed is one paired replicate", source_name,
           v.dump());
    }
    s.seeds.push_back(v.get<std::uint64_t>());
  }

  s.base_run = top.object("base_run");
  if (!top.has("base_run")) {
    fail("{}: missing required field 'base_run' (the run config every run starts from)",
         source_name);
  }
  refuse_study_owned(s.base_run, source_name + ": base_run");

  const json& datasets = top.array("datasets", true);
  for (std::size_t i = 0; i < datasets.size(); ++i) {
    const std::string where = fmt::format("{}: datasets[{}]", source_name, i);
    const Fields f(datasets[i], where, {"name", "path", "synth", "run"});
    DatasetSpec d;
    d.name = f.string("name", true);
    d.slug = slugify(d.name);
    const std::string named = fmt::format("{} (\"{}\")", where, d.name);
    if (f.has("path") == f.has("synth")) {
      fail(
          "{}: give exactly one of 'path' (a prepared data folder) and 'synth' (a `difftx data "
          "synth` recipe)",
          named);
    }
    if (f.has("path")) d.path = f.string("path", true);
    if (f.has("synth")) {
      const json recipe = f.object("synth");
      if (!recipe.contains("kind") || !recipe.at("kind").is_string()) {
        fail("{}: synth needs a 'kind' (\"mqar\" or \"needle-mix\")", named);
      }
      d.synth = recipe;
    }
    d.run = run_overrides(f, named);
    s.datasets.push_back(std::move(d));
  }
  check_unique(s.datasets, source_name + ": datasets", "datasets");

  const json& sizes = top.array("sizes", true);
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    const std::string where = fmt::format("{}: sizes[{}]", source_name, i);
    const Fields f(sizes[i], where, {"name", "run"});
    SizeSpec z;
    z.name = f.string("name", true);
    z.slug = slugify(z.name);
    z.run = run_overrides(f, fmt::format("{} (\"{}\")", where, z.name));
    s.sizes.push_back(std::move(z));
  }
  check_unique(s.sizes, source_name + ": sizes", "sizes");

  const json& arms = top.array("arms", true);
  for (std::size_t i = 0; i < arms.size(); ++i) {
    const std::string where = fmt::format("{}: arms[{}]", source_name, i);
    const Fields f(arms[i], where, {"name", "run", "matched_baseline_of"});
    ArmSpec a;
    a.name = f.string("name", true);
    a.slug = slugify(a.name);
    const std::string named = fmt::format("{} (\"{}\")", where, a.name);
    a.run = run_overrides(f, named);
    a.matched_baseline_of = f.string("matched_baseline_of", false);
    if (!a.matched_baseline_of.empty() && a.run.contains("model")) {
      fail("{}: a matched baseline takes its model from arm \"{}\": remove run.model", named,
           a.matched_baseline_of);
    }
    s.arms.push_back(std::move(a));
  }
  check_unique(s.arms, source_name + ": arms", "arms");
  if (s.arms.size() < 2) {
    fail(
        "{}: a study compares at least two arms (e.g. \"DIFF V1\" and its matched baseline), "
        "got {}",
        source_name, s.arms.size());
  }
  std::vector<std::string> names;
  for (const ArmSpec& a : s.arms) names.push_back(a.name);
  for (const ArmSpec& a : s.arms) {
    if (a.matched_baseline_of.empty()) continue;
    if (std::find(names.begin(), names.end(), a.matched_baseline_of) == names.end()) {
      fail("{}: arm \"{}\": matched_baseline_of names \"{}\", which is not an arm (arms: {})",
           source_name, a.name, a.matched_baseline_of, fmt::join(names, ", "));
    }
    if (a.matched_baseline_of == a.name) {
      fail("{}: arm \"{}\" cannot be the matched baseline of itself", source_name, a.name);
    }
    if (!s.arms[s.arm_index(a.matched_baseline_of)].matched_baseline_of.empty()) {
      fail(
          "{}: arm \"{}\" is the matched baseline of \"{}\", itself a matched baseline: name a "
          "DIFF arm",
          source_name, a.name, a.matched_baseline_of);
    }
  }
  s.baseline = top.string("baseline", true);
  if (std::find(names.begin(), names.end(), s.baseline) == names.end()) {
    fail("{}: field 'baseline' names \"{}\", which is not an arm (arms: {})", source_name,
         s.baseline, fmt::join(names, ", "));
  }

  s.evaluations = parse_evaluations(top.has("evaluations") ? top.at("evaluations") : json::object(),
                                    source_name + ": evaluations");
  if (s.evaluations.scaling_fit && s.sizes.size() < 2) {
    fail(
        "{}: evaluations.scaling_fit fits loss against model size: give at least two sizes, got "
        "{}",
        source_name, s.sizes.size());
  }
  return s;
}

StudySpec load_study_spec(const fs::path& file) {
  json j;
  try {
    j = json::parse(read_file_text(file));
  } catch (const json::parse_error& e) {
    fail("{}: not valid JSON ({}): fix the spec file", file.string(), e.what());
  }
  return parse_study_spec(j, file.string());
}

}  // namespace difftx::study
