// What one trained run of a study measured, kept in <run>/study_result.json (written atomically
// once the run is trained and evaluated, so a resumed study skips it): the metrics of the
// evaluations, the learning curve, and the timing. Everything but `timing` is a deterministic
// function of the run config on the CPU backend.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace difftx::study {

inline constexpr const char* kRunResultFile = "study_result.json";

struct CurvePoint {
  int step = 0;
  double tokens = 0;  // training tokens (positions) seen
  double val_loss = 0;
};

struct RunTiming {
  double train_seconds = 0;  // summed over every process of the run (metrics.jsonl elapsed_s)
  double eval_seconds = 0;
  double tokens_per_second = 0;
};

struct RunResult {
  std::string id;
  std::int64_t parameters = 0;
  int steps = 0;
  double tokens = 0;  // training tokens of the whole run
  // "val_loss", "test_loss" (nats per labelled target), "val_accuracy", "test_accuracy", and
  // those of eval_tasks.h.
  std::map<std::string, double> metrics;
  std::vector<CurvePoint> curve;      // the trainer's evaluations
  std::vector<double> final_lambdas;  // DIFF V1: lambda per layer at the end; else empty
  // The eval library's whole results (eval_tasks.h): {"needle", "outliers", "quant_logits"}.
  nlohmann::json evaluations = nlohmann::json::object();
  nlohmann::json config;  // the run config it was trained with
  RunTiming timing;

  nlohmann::json to_json() const;
  static RunResult from_json(const nlohmann::json& j, const std::string& source);
};

void write_run_result(const std::filesystem::path& run_dir, const RunResult& result);
// The result of a run folder when it holds one made with `config` (data.path and output.dir
// aside: they only say where things are); otherwise nothing (the run is measured again).
std::optional<RunResult> read_run_result(const std::filesystem::path& run_dir,
                                         const nlohmann::json& config);

}  // namespace difftx::study
