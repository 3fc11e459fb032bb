// From the runs' measurements to results.json (schema "difftx-study-results", docs/study.md):
//   summaries   per (data set, size, arm, metric): mean, sample std, min, max over seeds
//   paired      per (data set, size, arm != baseline, metric): the per-seed differences arm -
//               baseline (same seed, same data) with their mean, std, t interval and p-value
//   curves      per (data set, size, arm): the mean validation loss over seeds at each step
//   difficulty  per (data set, size, arm, split) of MQAR data: accuracy against pairs per model
//               width and sequence length
//   scaling     with evaluations.scaling_fit: the loss fit of scaling_fit.h per data set and
//               the parameter and token ratios at equal loss of every arm against the baseline
// Everything except "timing" (and each run's "timing") is deterministic given the runs.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "difftx/study/dataset.h"
#include "difftx/study/plan.h"
#include "difftx/study/run_result.h"
#include "difftx/study/spec.h"

namespace difftx::study {

inline constexpr const char* kResultsSchema = "difftx-study-results";
inline constexpr int kResultsVersion = 1;

struct StudyContext {
  std::string device;
  double wall_seconds = 0;       // of the process that wrote the results
  std::size_t planned_runs = 0;  // runs of the whole study; more than given: a partial result
};

// One metric a study can report, how to name it and which direction is better.
struct MetricInfo {
  std::string key;    // "val_loss", "test_accuracy", ...
  std::string label;  // "validation loss (nats)"
  bool higher_is_better = false;
};
// The description of `key`; throws for an unknown metric.
MetricInfo metric_info(const std::string& key);

// `results[i]` belongs to `runs[i]` (the runs measured so far: "complete" is false when they
// are fewer than context.planned_runs); `datasets[i]` describes spec.datasets[i].
nlohmann::json analyse_study(const StudySpec& spec, const std::vector<PlannedRun>& runs,
                             const std::vector<RunResult>& results,
                             const std::vector<DatasetInfo>& datasets, const StudyContext& context);

}  // namespace difftx::study
