// Statistics over a study's runs, written as results.json (see analysis.h).
#include "difftx/study/analysis.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <utility>

#include "difftx/core/error.h"
#include "difftx/model/config.h"
#include "difftx/study/scaling_fit.h"
#include "difftx/study/statistics.h"

namespace difftx::study {
using nlohmann::json;

namespace {

// JSON has no NaN or infinity: such values are written as null.
json num(double v) {
  return std::isfinite(v) ? json(v) : json(nullptr);
}

json summary_json(const Summary& s) {
  return {{"n", s.n},
          {"mean", num(s.mean)},
          {"std", num(s.std)},
          {"min", num(s.min)},
          {"max", num(s.max)}};
}

json interval_json(const PairedDifference& d) {
  return {{"n", d.n},
          {"mean", num(d.mean)},
          {"std", num(d.std)},
          {"confidence", d.confidence},
          {"t_critical", num(d.t_critical)},
          {"ci_low", num(d.ci_low)},
          {"ci_high", num(d.ci_high)},
          {"t", num(d.t_statistic)},
          {"p", num(d.p_value)}};
}

const std::vector<MetricInfo>& metric_table() {
  static const std::vector<MetricInfo> table = {
      {"val_loss", "validation loss (nats per labelled target)", false},
      {"test_loss", "test loss (nats per labelled target)", false},
      {"val_accuracy", "validation accuracy at labelled positions", true},
      {"test_accuracy", "test accuracy at labelled positions", true},
      {"logit_top1", "largest |attention logit|", false},
      {"logit_top1_over_median", "attention logits: top-1 / median of |x|", false},
      {"hidden_top1", "largest |hidden state|", false},
      {"hidden_top1_over_median", "hidden states: top-1 / median of |x|", false},
  };
  return table;
}

// Metrics with a number in their name (eval_tasks.h): prefix, label format, direction, and
// whether their numbers sort descending (bits: 16 first).
struct MetricFamily {
  const char* prefix;
  const char* label;
  bool higher_is_better;
  bool descending;
};
const std::vector<MetricFamily>& metric_families() {
  static const std::vector<MetricFamily> families = {
      {"needle_accuracy_", "needle retrieval accuracy at {} tokens", true, false},
      {"quant_loss_b", "validation loss, attention logits at {} bits", false, true},
      {"quant_delta_b", "loss increase at {} bits over 16 bits", false, true},
      {"quant_kl_b", "KL to the unquantized model at {} bits (nats)", false, true},
  };
  return families;
}

// The number after `prefix` in `key`, or -1 when `key` is not prefix + digits.
long family_number(const std::string& key, const std::string& prefix) {
  if (key.size() <= prefix.size() || key.compare(0, prefix.size(), prefix) != 0) return -1;
  const std::string rest = key.substr(prefix.size());
  if (rest.size() > 9 || rest.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stol(rest);
}

// Report order: the fixed table, then each family in order, by its number.
std::pair<long, long> metric_rank(const std::string& key) {
  const auto& table = metric_table();
  for (std::size_t i = 0; i < table.size(); ++i) {
    if (table[i].key == key) return {long(i), 0};
  }
  const auto& families = metric_families();
  for (std::size_t f = 0; f < families.size(); ++f) {
    const long n = family_number(key, families[f].prefix);
    if (n >= 0) return {long(table.size() + f), families[f].descending ? -n : n};
  }
  fail("unknown study metric '{}'", key);
}

// The task description of split `prefix` in meta.json's task ("val" -> "validation").
const json* task_split(const json& task, const std::string& prefix) {
  const std::string key = prefix == "val" ? "validation" : prefix;
  if (!task.is_object() || !task.contains(key) || !task.at(key).is_object()) return nullptr;
  return &task.at(key);
}

// Runs grouped by (data set, size, arm), each group's runs in seed order.
using Cell = std::tuple<std::size_t, std::size_t, std::size_t>;

}  // namespace

MetricInfo metric_info(const std::string& key) {
  for (const MetricInfo& m : metric_table()) {
    if (m.key == key) return m;
  }
  for (const MetricFamily& f : metric_families()) {
    const long n = family_number(key, f.prefix);
    if (n >= 0) return {key, fmt::format(fmt::runtime(f.label), n), f.higher_is_better};
  }
  fail("unknown study metric '{}'", key);
}

json analyse_study(const StudySpec& spec, const std::vector<PlannedRun>& runs,
                   const std::vector<RunResult>& results, const std::vector<DatasetInfo>& datasets,
                   const StudyContext& context) {
  DIFFTX_CHECK(runs.size() == results.size(), "internal: {} results for {} runs", results.size(),
               runs.size());
  json out;
  out["schema"] = kResultsSchema;
  out["version"] = kResultsVersion;
  out["study"] = spec.name;
  out["description"] = spec.description;
  out["expected_wall_time"] = spec.expected_wall_time;
  out["spec_file"] = spec.source_name;
  out["fingerprint"] = spec.fingerprint();
  out["spec"] = spec.source;
  out["device"] = context.device;
  out["seeds"] = spec.seeds;
  out["confidence"] = spec.confidence;
  out["baseline"] = spec.baseline;
  out["complete"] = runs.size() >= context.planned_runs;
  out["planned_runs"] = std::max(context.planned_runs, runs.size());

  std::map<Cell, std::vector<std::size_t>> cells;  // run indices, seed order
  for (std::size_t i = 0; i < runs.size(); ++i) {
    cells[{runs[i].dataset, runs[i].size, runs[i].arm}].push_back(i);
  }
  for (auto& [cell, idx] : cells) {
    std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
      return runs[a].seed_index < runs[b].seed_index;
    });
  }

  json arms = json::array();
  for (std::size_t a = 0; a < spec.arms.size(); ++a) {
    std::string attention;
    for (const PlannedRun& r : runs) {
      if (r.arm == a) {
        attention = attention_kind_name(r.config.model.attention);
        break;
      }
    }
    arms.push_back({{"name", spec.arms[a].name},
                    {"slug", spec.arms[a].slug},
                    {"attention", attention},
                    {"matched_baseline_of", spec.arms[a].matched_baseline_of}});
  }
  out["arms"] = arms;
  json sizes = json::array();
  for (const SizeSpec& z : spec.sizes) sizes.push_back({{"name", z.name}, {"slug", z.slug}});
  out["sizes"] = sizes;
  json data_json = json::array();
  for (std::size_t d = 0; d < spec.datasets.size(); ++d) {
    json splits = json::object();
    for (const auto& [prefix, s] : datasets[d].splits) {
      splits[prefix] = {
          {"record_tokens", s.record_tokens}, {"label_mask", s.label_mask}, {"tokens", s.tokens}};
    }
    data_json.push_back(
        {{"name", spec.datasets[d].name},
         {"slug", spec.datasets[d].slug},
         {"path", datasets[d].dir.string()},
         {"synth", spec.datasets[d].synth ? *spec.datasets[d].synth : json(nullptr)},
         {"vocab_size", datasets[d].vocab_size},
         {"splits", splits},
         {"task", datasets[d].task}});
  }
  out["datasets"] = data_json;

  // The metrics every run measured, in table order.
  std::vector<std::string> metric_keys;
  if (!results.empty()) {
    for (const auto& [key, value] : results.front().metrics) {
      const bool all = std::all_of(results.begin(), results.end(),
                                   [&](const RunResult& r) { return r.metrics.count(key) > 0; });
      if (all) metric_keys.push_back(key);
    }
  }
  std::sort(metric_keys.begin(), metric_keys.end(), [](const std::string& a, const std::string& b) {
    return metric_rank(a) < metric_rank(b);
  });
  json metrics = json::array();
  for (const std::string& k : metric_keys) {
    const MetricInfo m = metric_info(k);
    metrics.push_back(
        {{"key", m.key}, {"label", m.label}, {"better", m.higher_is_better ? "higher" : "lower"}});
  }
  out["metrics"] = metrics;

  json runs_json = json::array();
  double train_seconds = 0, eval_seconds = 0;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const PlannedRun& p = runs[i];
    const RunResult& r = results[i];
    json j = r.to_json();
    j.erase("config");
    j["dataset"] = spec.datasets[p.dataset].name;
    j["size"] = spec.sizes[p.size].name;
    j["arm"] = spec.arms[p.arm].name;
    j["seed"] = p.seed;
    j["attention"] = attention_kind_name(p.config.model.attention);
    j["d_model"] = p.config.model.d_model;
    j["n_layers"] = p.config.model.n_layers;
    j["n_heads"] = p.config.model.n_heads;
    j["head_dim"] = p.config.model.head_dim;
    runs_json.push_back(j);
    train_seconds += r.timing.train_seconds;
    eval_seconds += r.timing.eval_seconds;
  }
  out["runs"] = runs_json;

  const std::size_t base = spec.baseline_index();
  json summaries = json::array(), paired = json::array(), curves = json::array(),
       difficulty = json::array();
  for (std::size_t d = 0; d < spec.datasets.size(); ++d) {
    for (std::size_t z = 0; z < spec.sizes.size(); ++z) {
      for (std::size_t a = 0; a < spec.arms.size(); ++a) {
        const auto it = cells.find({d, z, a});
        if (it == cells.end()) continue;
        const std::vector<std::size_t>& idx = it->second;
        const json where = {{"dataset", spec.datasets[d].name},
                            {"size", spec.sizes[z].name},
                            {"arm", spec.arms[a].name}};
        for (const std::string& k : metric_keys) {
          std::vector<double> values;
          for (std::size_t i : idx) values.push_back(results[i].metrics.at(k));
          json s = where;
          s["metric"] = k;
          s.update(summary_json(summarize(values)));
          s["values"] = values;
          summaries.push_back(s);
          if (a == base) continue;
          const auto bit = cells.find({d, z, base});
          if (bit == cells.end()) continue;
          // Pairs: the seeds both arms ran (every seed, in a complete study).
          std::vector<double> mine, theirs, seeds;
          for (std::size_t i : idx) {
            for (std::size_t j : bit->second) {
              if (runs[j].seed_index == runs[i].seed_index) {
                mine.push_back(results[i].metrics.at(k));
                theirs.push_back(results[j].metrics.at(k));
                seeds.push_back(double(runs[i].seed));
              }
            }
          }
          const PairedDifference diff = paired_difference(mine, theirs, spec.confidence);
          json pj = where;
          pj["baseline"] = spec.baseline;
          pj["metric"] = k;
          pj.update(interval_json(diff));
          std::vector<double> each(mine.size());
          for (std::size_t q = 0; q < mine.size(); ++q) each[q] = mine[q] - theirs[q];
          pj["differences"] = each;
          pj["seeds"] = seeds;
          pj["excludes_zero"] = diff.n >= 2 && diff.excludes_zero();
          paired.push_back(pj);
        }

        // Learning curve: the mean over seeds at the steps every seed evaluated.
        std::map<int, std::vector<double>> by_step;
        std::map<int, double> tokens_at;
        for (std::size_t i : idx) {
          for (const CurvePoint& c : results[i].curve) {
            by_step[c.step].push_back(c.val_loss);
            tokens_at[c.step] = c.tokens;
          }
        }
        json points = json::array();
        for (const auto& [step, values] : by_step) {
          if (values.size() != idx.size()) continue;
          const Summary s = summarize(values);
          points.push_back({{"step", step},
                            {"tokens", tokens_at[step]},
                            {"mean", num(s.mean)},
                            {"std", num(s.std)},
                            {"n", s.n}});
        }
        json cj = where;
        cj["points"] = points;
        curves.push_back(cj);

        // Accuracy against difficulty on MQAR data (meta.json task of kind "mqar").
        const json& task = datasets[d].task;
        if (task.is_object() && task.value("kind", std::string()) == "mqar") {
          for (const std::string& split : spec.evaluations.accuracy_splits) {
            const json* shape = task_split(task, split);
            if (!shape) continue;
            std::vector<double> values;
            for (std::size_t i : idx) values.push_back(results[i].metrics.at(split + "_accuracy"));
            const int width = runs[idx.front()].config.model.d_model;
            const int pairs = shape->value("pairs", 0);
            json dj = where;
            dj["split"] = split;
            dj["pairs"] = pairs;
            dj["seq_len"] = shape->value("seq_len", 0);
            dj["d_model"] = width;
            dj["pairs_per_width"] = double(pairs) / double(width);
            dj["accuracy"] = interval_json(mean_interval(values, spec.confidence));
            difficulty.push_back(dj);
          }
        }
      }
    }
  }
  out["summaries"] = summaries;
  out["paired"] = paired;
  out["curves"] = curves;
  out["difficulty"] = difficulty;

  json scaling = nullptr;
  if (spec.evaluations.scaling_fit) {
    scaling = json::array();
    for (std::size_t d = 0; d < spec.datasets.size(); ++d) {
      std::vector<LossPoint> points;
      json points_json = json::array();
      for (std::size_t i = 0; i < runs.size(); ++i) {
        if (runs[i].dataset != d) continue;
        const RunResult& r = results[i];
        for (const CurvePoint& c : r.curve) {
          if (c.tokens < spec.evaluations.fit_min_token_fraction * r.tokens) continue;
          points.push_back(
              {runs[i].arm, runs[i].seed_index, double(r.parameters), c.tokens, c.val_loss});
          points_json.push_back({{"arm", spec.arms[runs[i].arm].name},
                                 {"seed", runs[i].seed},
                                 {"parameters", r.parameters},
                                 {"tokens", c.tokens},
                                 {"loss", c.val_loss}});
        }
      }
      ScalingAnalysis sa;
      try {
        sa = analyse_scaling(points, spec.arms.size(), base, spec.evaluations.fit_tokens,
                             spec.confidence);
      } catch (const Error& e) {
        // The measurements stand without the fit; the report says why there is none.
        scaling.push_back({{"dataset", spec.datasets[d].name}, {"error", e.what()}});
        continue;
      }
      json intercepts = json::object();
      for (std::size_t a = 0; a < spec.arms.size(); ++a) {
        intercepts[spec.arms[a].name] = sa.fit.intercept[a];
      }
      json ratios = json::array();
      for (const EqualLossRatio& r : sa.ratios) {
        json by_seed = json::array();
        for (std::size_t g = 0; g < sa.groups.size(); ++g) {
          by_seed.push_back({{"seed", spec.seeds[sa.groups[g]]},
                             {"parameter_ratio", num(r.parameter_ratio_by_group[g])},
                             {"token_ratio", num(r.token_ratio_by_group[g])}});
        }
        ratios.push_back({{"arm", spec.arms[r.arm].name},
                          {"against", spec.baseline},
                          {"parameter_ratio", num(r.parameter_ratio)},
                          {"parameter_ci_low", num(r.parameter_ci_low)},
                          {"parameter_ci_high", num(r.parameter_ci_high)},
                          {"token_ratio", num(r.token_ratio)},
                          {"token_ci_low", num(r.token_ci_low)},
                          {"token_ci_high", num(r.token_ci_high)},
                          {"by_seed", by_seed},
                          {"note", r.note}});
      }
      scaling.push_back({{"dataset", spec.datasets[d].name},
                         {"model", "log L = c_arm - alpha log N - beta log D"},
                         {"min_token_fraction", spec.evaluations.fit_min_token_fraction},
                         {"alpha", sa.fit.alpha},
                         {"beta", num(sa.fit.uses_tokens ? sa.fit.beta : NAN)},
                         {"uses_tokens", sa.fit.uses_tokens},
                         {"intercepts", intercepts},
                         {"rms_log_residual", sa.fit.rms_log_residual},
                         {"points", points_json},
                         {"ratios", ratios}});
    }
  }
  out["scaling"] = scaling;
  out["timing"] = {{"wall_seconds_last_process", context.wall_seconds},
                   {"train_seconds", train_seconds},
                   {"eval_seconds", eval_seconds}};
  return out;
}

}  // namespace difftx::study
