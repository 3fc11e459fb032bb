// Expanding a study spec into its runs (see plan.h).
#include "difftx/study/plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "difftx/core/error.h"
#include "difftx/model/config.h"
#include "difftx/model/params.h"

namespace difftx::study {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json merged_run(const StudySpec& spec, std::size_t dataset, std::size_t size, std::size_t arm) {
  json run = spec.base_run;
  merge_json(run, spec.datasets[dataset].run);
  merge_json(run, spec.sizes[size].run);
  merge_json(run, spec.arms[arm].run);
  return run;
}

int field_int(const json& run, const char* section, const char* field, int fallback) {
  if (run.contains(section) && run.at(section).is_object() && run.at(section).contains(field) &&
      run.at(section).at(field).is_number_integer()) {
    return run.at(section).at(field).get<int>();
  }
  return fallback;
}

// A model given d_model and head_dim but no n_heads gets the head count that fits: d_model /
// (2 head_dim) for DIFF V1 (each head has two q/k components), d_model / head_dim otherwise. So
// one arm ({"attention": "diff_v1", "head_dim": 64}) serves every size.
void derive_head_count(json& model, const std::string& where) {
  if (!model.is_object() || model.contains("n_heads") || !model.contains("head_dim") ||
      !model.contains("d_model") || !model.at("head_dim").is_number_integer() ||
      !model.at("d_model").is_number_integer()) {
    return;
  }
  const int width = model.at("d_model").get<int>();
  const int head = model.at("head_dim").get<int>();
  const bool v1 = model.value("attention", std::string("diff_v1")) == "diff_v1";
  const int per_head = v1 ? 2 * head : head;
  if (per_head <= 0 || width % per_head != 0 || width / per_head < 1) {
    fail(
        "{}: d_model {} is not a multiple of {} ({}head_dim {}): no head count fits; give "
        "model.n_heads or another d_model",
        where, width, per_head, v1 ? "2 x " : "", head);
  }
  model["n_heads"] = width / per_head;
}

}  // namespace

std::vector<std::string> evaluated_splits(const EvaluationSpec& e) {
  std::vector<std::string> out = e.loss_splits;
  for (const auto& s : e.accuracy_splits) {
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  }
  return out;
}

std::vector<PlannedRun> plan_runs(const StudySpec& spec, const std::vector<DatasetInfo>& datasets,
                                  const fs::path& out, const std::string& device) {
  DIFFTX_CHECK(datasets.size() == spec.datasets.size(), "internal: {} data set descriptions for {}",
               datasets.size(), spec.datasets.size());
  const std::vector<std::string> splits = evaluated_splits(spec.evaluations);
  std::vector<PlannedRun> runs;
  for (std::size_t d = 0; d < spec.datasets.size(); ++d) {
    const DatasetInfo& data = datasets[d];
    for (const std::string& split : splits) {
      if (!data.has_split(split)) {
        fail(
            "{}: the evaluations read split \"{}\" but data set \"{}\" ('{}') has none: drop it "
            "from evaluations or use a data set with a {} split",
            spec.source_name, split, spec.datasets[d].name, data.dir.string(), split);
      }
    }
    const EvaluationSpec& ev = spec.evaluations;
    const bool needle_mix =
        data.task.is_object() && data.task.value("kind", std::string()) == "needle-mix";
    if (ev.needle.enabled && !needle_mix) {
      fail(
          "{}: evaluations.needle needs needle-mix data (its held-out cities and digits), but "
          "data set \"{}\" ('{}') is not: make it with a \"needle-mix\" synth recipe or drop "
          "evaluations.needle",
          spec.source_name, spec.datasets[d].name, data.dir.string());
    }
    if ((ev.outliers.enabled || ev.quant_logits.enabled) &&
        data.splits.at("val").record_tokens > 0) {
      fail(
          "{}: evaluations.{} reads the validation text as one token stream, but data set "
          "\"{}\" holds examples of {} tokens (task data): use a text data set (prepared or "
          "needle-mix)",
          spec.source_name, ev.outliers.enabled ? "outliers" : "quant_logits",
          spec.datasets[d].name, data.splits.at("val").record_tokens);
    }
    for (std::size_t z = 0; z < spec.sizes.size(); ++z) {
      for (std::size_t k = 0; k < spec.seeds.size(); ++k) {
        for (std::size_t a = 0; a < spec.arms.size(); ++a) {
          const ArmSpec& arm = spec.arms[a];
          PlannedRun r;
          r.dataset = d;
          r.size = z;
          r.arm = a;
          r.seed_index = k;
          r.seed = spec.seeds[k];
          r.id = fmt::format("{}/{}/{}/seed-{}", spec.datasets[d].slug, spec.sizes[z].slug,
                             arm.slug, r.seed);
          r.dir = out / "runs" / spec.datasets[d].slug / spec.sizes[z].slug / arm.slug /
                  fmt::format("seed-{}", r.seed);
          const std::string where = fmt::format("{}: run {}", spec.source_name, r.id);

          json run = merged_run(spec, d, z, a);
          if (!arm.matched_baseline_of.empty()) {
            // The DIFF arm's model at this size, made complete (defaults filled in) first.
            const std::size_t of = spec.arm_index(arm.matched_baseline_of);
            json diff_model = merged_run(spec, d, z, of).value("model", json::object());
            diff_model["vocab_size"] = data.vocab_size;
            derive_head_count(diff_model, where);
            const ModelConfig diff = ModelConfig::from_json(
                diff_model,
                fmt::format("{} (model of arm \"{}\")", where, arm.matched_baseline_of));
            if (diff.attention == AttentionKind::softmax) {
              fail(
                  "{}: arm \"{}\" is the matched baseline of \"{}\", which is already a softmax "
                  "model: name a DIFF arm",
                  spec.source_name, arm.name, arm.matched_baseline_of);
            }
            run["model"] = matched_baseline(diff).to_json();
          }
          if (!run.contains("model") || !run.at("model").is_object()) {
            fail("{}: no \"model\" section: give it in base_run, the size or the arm", where);
          }
          if (run.at("model").contains("vocab_size") &&
              run.at("model").at("vocab_size") != json(data.vocab_size)) {
            fail(
                "{}: model.vocab_size is {} but data set \"{}\" has {} ids: remove vocab_size "
                "from the spec (the study takes the data's)",
                where, run.at("model").at("vocab_size").dump(), spec.datasets[d].name,
                data.vocab_size);
          }
          run["model"]["vocab_size"] = data.vocab_size;
          derive_head_count(run["model"], where);
          const SplitInfo& train = data.splits.at("train");
          if (train.record_tokens > 0) {
            const int need = static_cast<int>(train.record_tokens) - 1;
            const int given = field_int(run, "data", "seq_len", need);
            if (given != need) {
              fail(
                  "{}: data.seq_len is {} but data set \"{}\" holds examples of {} tokens, which "
                  "need seq_len {}: remove data.seq_len from the spec (the study sets it)",
                  where, given, spec.datasets[d].name, train.record_tokens, need);
            }
            run["data"]["seq_len"] = need;
          }
          run["data"]["path"] = data.dir.string();
          run["data"]["seed"] = r.seed;
          run["train"]["seed"] = r.seed;
          run["train"]["device"] = device;
          run["output"]["dir"] = r.dir.string();
          r.config = RunConfig::from_json(run, where);
          for (const std::string& split : splits) {
            const int len = data.seq_len_for(split, r.config.data.seq_len);
            if (len > r.config.model.max_seq_len) {
              fail(
                  "{}: split \"{}\" of data set \"{}\" has sequences of {} tokens but "
                  "model.max_seq_len is {}: set run.model.max_seq_len to at least {}",
                  where, split, spec.datasets[d].name, len, r.config.model.max_seq_len, len);
            }
          }
          const int max_len = r.config.model.max_seq_len;
          // A needle prompt leaves room for the greedy answer: its digits and 4 tokens.
          const int room = needle_mix ? data.task.value("digits", 0) + 4 : 0;
          for (const int len : ev.needle.lengths) {
            if (len + room > max_len) {
              fail(
                  "{}: evaluations.needle.lengths asks for {} tokens, which with the answer's {} "
                  "tokens exceeds model.max_seq_len {}: use lengths of at most {} or a larger "
                  "run.model.max_seq_len",
                  where, len, room, max_len, max_len - room);
            }
          }
          for (const auto& [name, context] :
               {std::pair{"outliers", ev.outliers.enabled ? ev.outliers.context : 0},
                std::pair{"quant_logits", ev.quant_logits.enabled ? ev.quant_logits.context : 0}}) {
            if (context > max_len) {
              fail(
                  "{}: evaluations.{}.context is {} but model.max_seq_len is {}: use a context "
                  "of at most {} (0: data.seq_len)",
                  where, name, context, max_len, max_len);
            }
          }
          r.parameters = parameter_count(r.config.model);
          runs.push_back(std::move(r));
        }
      }
    }
  }
  return runs;
}

}  // namespace difftx::study
