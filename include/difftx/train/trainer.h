// The training loop: data loader -> model forward/backward (micro-batches) -> clipping ->
// AdamW -> metrics (JSONL + progress), periodic validation with lambda per layer, checkpoints
// (keep last K, atomic, resumable bit-exactly on the CPU).
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "difftx/train/run_config.h"

namespace difftx {

struct TrainOptions {
  bool resume = false;               // continue from the newest complete checkpoint in output.dir
  std::optional<int> stop_after;     // stop (with a checkpoint) after this many total steps
  bool quiet = false;                // no progress output (metrics still go to JSONL)
};

struct EvalPoint {
  int step = 0;
  double val_loss = 0;
  std::vector<double> lambdas;  // DIFF V1: per layer
};

struct TrainSummary {
  int steps_done = 0;
  double last_train_loss = 0;
  double final_val_loss = 0;
  double unigram_entropy = 0;    // of the training tokens, nats
  double tokens_per_second = 0;  // training throughput over this process's steps
  std::int64_t parameters = 0;
  std::filesystem::path checkpoint;  // last checkpoint written
  std::vector<std::pair<int, double>> train_losses;  // (step, loss) of this process's steps
  std::vector<EvalPoint> evals;
};

TrainSummary train_model(const RunConfig& config, const TrainOptions& options);

// Newest complete checkpoint folder under <dir>/checkpoints (empty path if none).
std::filesystem::path latest_checkpoint(const std::filesystem::path& run_dir);

// Reads a run's metrics.jsonl back: train losses and evaluations (for reports).
TrainSummary read_metrics(const std::filesystem::path& metrics_file);

}  // namespace difftx
