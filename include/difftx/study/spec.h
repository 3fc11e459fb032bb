// A study spec (configs/studies/*.json, docs/study.md): arms (DIFF V1, DIFF V2, the matched
// softmax baseline), model sizes, seeds, data sets (a prepared folder or a `data synth` recipe)
// and the evaluations, all read with strict validation: every mistake is one difftx::Error
// naming the spec file, the field and what to write instead.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace difftx::study {

// A data set of the study. Exactly one of `path` (a prepared data folder) and `synth` (a
// recipe the study runs first, into <out>/data/<slug>).
struct DatasetSpec {
  std::string name;
  std::string slug;                     // folder name: name lower-cased, other characters -> '-'
  std::filesystem::path path;           // prepared folder (relative paths: from the working folder)
  std::optional<nlohmann::json> synth;  // {"kind": "mqar" | "needle-mix", ...options}
  nlohmann::json run = nlohmann::json::object();  // run-config overrides for this data set
};

// A model size: run-config overrides (usually model.d_model, n_layers, ffn_dim).
struct SizeSpec {
  std::string name;
  std::string slug;
  nlohmann::json run = nlohmann::json::object();
};

// An arm: its own overrides (model.attention, n_heads, ...), or the parameter-matched softmax
// baseline of another arm (model::matched_baseline of that arm's model at each size).
struct ArmSpec {
  std::string name;
  std::string slug;
  nlohmann::json run = nlohmann::json::object();
  std::string matched_baseline_of;  // empty: not a matched baseline
};

// Multi-needle retrieval (eval/needle.h) of every run, on a needle-mix data set: its held-out
// test cities (needles.json) as keys, its digits, and haystacks of its validation sentences
// (the needle sentences and questions of those documents left out).
struct NeedleEvalSpec {
  bool enabled = false;
  std::vector<int> lengths;                        // prompt tokens; required
  std::vector<int> depths = {0, 25, 50, 75, 100};  // percent
  std::string configs = "1:1";                     // N:R pairs
  int samples = 20;                                // per (config, depth, length)
};

// Activation outliers (eval/outliers.h) of every run on its data set's validation text.
struct OutlierEvalSpec {
  bool enabled = false;
  std::uint64_t tokens = 65536;
  int context = 0;  // window; 0: the run's data.seq_len
  int batch = 4;
};

// Attention-logit quantization (eval/quant.h) of every run on its data set's validation text.
struct QuantEvalSpec {
  bool enabled = false;
  std::vector<int> bits = {16, 8, 6, 4};  // 16 (no quantization) is always measured
  bool per_head = false;
  std::uint64_t tokens = 32768;
  int context = 0;  // window; 0: the run's data.seq_len
  int batch = 4;
};

// Evaluations of every trained run, and the study-level analyses.
struct EvaluationSpec {
  // Mean loss per labelled target on these splits ("val", "test").
  std::vector<std::string> loss_splits = {"val"};
  // Argmax accuracy at the labelled positions (MQAR) on these splits; empty: not measured.
  std::vector<std::string> accuracy_splits;
  int accuracy_max_batches = 0;  // 0: the whole split
  int eval_batch_size = 0;       // examples per forward in these evaluations; 0: data.batch_size
  // Scaling fit (language-model study): points of each learning curve from this fraction of
  // the run's tokens on; whether the token term is fitted.
  bool scaling_fit = false;
  double fit_min_token_fraction = 0.25;
  bool fit_tokens = true;
  NeedleEvalSpec needle;
  OutlierEvalSpec outliers;
  QuantEvalSpec quant_logits;
  // The eval library's seed (needle samples); the same for every run.
  std::uint64_t eval_seed = 1;
};

struct StudySpec {
  std::string name;
  std::string description;
  std::string expected_wall_time;  // e.g. "about 3.5 minutes on one H200"
  std::string device = "cpu";      // default device; `difftx study --device` overrides
  std::vector<std::uint64_t> seeds;
  double confidence = 0.95;
  std::string baseline;     // name of the arm the paired differences are against
  nlohmann::json base_run;  // the run config every run starts from
  std::vector<DatasetSpec> datasets;
  std::vector<SizeSpec> sizes;
  std::vector<ArmSpec> arms;
  EvaluationSpec evaluations;
  nlohmann::json source;    // the spec as read (for study.json and the report)
  std::string source_name;  // the file it came from

  std::size_t arm_index(const std::string& name) const;  // throws if absent
  std::size_t baseline_index() const { return arm_index(baseline); }
  // XXH3-64 of the canonical JSON of `source`: a resumed study must have the same.
  std::string fingerprint() const;
};

// Parses and validates (names, references, seeds, evaluation options). Run-config overrides
// are checked when the runs are planned (plan.h), where each run's config is complete.
StudySpec parse_study_spec(const nlohmann::json& j, const std::string& source_name);
StudySpec load_study_spec(const std::filesystem::path& file);

// "DIFF V1" -> "diff-v1": lower-case letters and digits kept, runs of anything else -> '-'.
std::string slugify(const std::string& name);

// Recursive merge: objects merge key by key, anything else in `patch` replaces.
void merge_json(nlohmann::json& target, const nlohmann::json& patch);

}  // namespace difftx::study
