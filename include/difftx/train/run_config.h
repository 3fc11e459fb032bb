// RunConfig: everything one training run needs, read from one JSON file (configs/*.json):
// model, data, optimizer, schedule, training loop and output settings. docs/config.md lists
// every field; unknown fields and wrong types are errors naming the field.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "difftx/model/config.h"
#include "difftx/train/schedule.h"

namespace difftx {

struct DataSettings {
  std::filesystem::path path = "data/brown";  // folder of shards + tokenizer.model
  int seq_len = 128;                          // T
  int batch_size = 16;                        // B per micro-batch
  std::uint64_t seed = 1;                     // window order
};

inline constexpr int kMaxGradAccum = 1 << 16;

struct OptimSettings {
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;     // decoupled; matrices only (see params.h ParamSpec)
  bool decay_embeddings = true;  // the (tied) embedding matrix is decayed like other matrices
  double grad_clip = 1.0;        // global L2 norm; 0 disables clipping
  int grad_accum = 1;            // micro-batches per optimizer step, at most kMaxGradAccum
};

enum class NanPolicy { stop, skip };

struct TrainSettings {
  int steps = 0;               // optimizer steps
  int eval_every = 100;        // steps between validation evaluations (0: only at the end)
  int eval_batches = 0;        // validation batches per evaluation (0: the whole split)
  int log_every = 10;          // steps between plain log lines (JSONL gets every step)
  std::uint64_t seed = 1;      // parameter initialisation
  std::string device = "cpu";  // "cpu" or "cuda"
  NanPolicy nan_policy = NanPolicy::stop;
  int max_skipped_steps = 3;  // NanPolicy::skip: consecutive non-finite steps tolerated
};

struct OutputSettings {
  std::filesystem::path dir = "runs/tiny";
  int checkpoint_every = 0;  // steps between checkpoints (0: only at the end)
  int keep_last = 2;         // checkpoints kept on disk
};

struct RunConfig {
  ModelConfig model;
  DataSettings data;
  OptimSettings optim;
  ScheduleConfig schedule;
  TrainSettings train;
  OutputSettings output;
  nlohmann::json source;  // the parsed file (with defaults filled in), stored in checkpoints

  // Validates everything load_run_config does (the memory check included).
  static RunConfig from_json(const nlohmann::json& j, const std::string& source_name);
  nlohmann::json to_json() const;
};

// Reads a run config file (a regular file, JSON within the limits of core/json_input.h). Every
// field is typed and range-checked; a model that cannot be trained in this machine's memory
// (model/memory_estimate.h) is refused with the figure.
RunConfig load_run_config(const std::filesystem::path& path);

}  // namespace difftx
