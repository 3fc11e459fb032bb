// A run's log, <run>/metrics.jsonl: one JSON object per line, each with "type", "step" and
// "time" (UTC, ISO 8601 with milliseconds). Records (docs/config.md lists every field):
//   run      once, at the start: difftx version, parameters, config, backend, device, seeds
//   resume   each time a later process continues the run (--resume)
//   lambda   DIFF V1: lambda per layer before the first step (step 0)
//   train    every step: loss, lr, grad_norm, tokens_per_s, tokens (seen so far), elapsed_s
//            (summed over every process of the run), mfu (GPU with a known peak)
//   eval     each evaluation: val_loss, val_ppl, lambda per layer
//   skip     a step skipped for a non-finite loss or gradient (train.nan_policy "skip")
//   summary  at the end of each process: steps, tokens_per_s of this process, final_val_loss
//            (null when no evaluation ran), stop reason, checkpoint
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace difftx {

class MetricsLog {
 public:
  // A new run: the file starts empty.
  static MetricsLog start(const std::filesystem::path& file);
  // A resumed run at `step`: keeps the lines of steps <= step (what a stopped process logged
  // after its last checkpoint is dropped, so no step is logged twice) and appends.
  static MetricsLog resume(const std::filesystem::path& file, int step);

  // Appends one record (a JSON object) with "time" added; flushed at once.
  void write(nlohmann::json record);

  // The elapsed_s of the last kept "train" line (0 for a new run): the time spent by earlier
  // processes of this run.
  double elapsed_before() const { return elapsed_before_; }

  MetricsLog(MetricsLog&&) = default;

 private:
  MetricsLog(const std::filesystem::path& file, double elapsed_before);
  std::filesystem::path file_;
  std::ofstream out_;
  double elapsed_before_ = 0;
};

// "2026-12-01T10:02:03.123Z": now, UTC.
std::string utc_timestamp();

// A run's log read back (for reports and summaries).
struct TrainRecord {
  int step = 0;
  double loss = 0, lr = 0, grad_norm = 0, tokens_per_s = 0, elapsed_s = 0;
  double tokens = 0;          // tokens seen after this step
  std::optional<double> mfu;  // GPU runs with a known peak
};

struct EvalRecord {
  int step = 0;
  double val_loss = 0;
};

struct LambdaRecord {
  int step = 0;
  std::vector<double> per_layer;
};

struct RunMetrics {
  nlohmann::json run;              // the "run" record (config, parameters, ...); null if absent
  std::vector<TrainRecord> train;  // by step
  std::vector<EvalRecord> evals;
  std::vector<LambdaRecord> lambdas;  // step 0 (if logged) and every evaluation
  int resumes = 0;
  std::optional<double> final_val_loss;     // the last evaluation's
  std::optional<double> tokens_per_second;  // the last summary's (the last process's rate)
};

// Reads metrics.jsonl; a malformed line or a record missing a field it needs is an Error
// naming the file and line number.
RunMetrics read_metrics(const std::filesystem::path& file);

}  // namespace difftx
