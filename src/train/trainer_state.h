// The Trainer's state, shared by its two source files: trainer_setup.cpp (data, run folder,
// resume, init-from) and trainer.cpp (step, evaluation, checkpoint, the loop). Internal to
// the train layer.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <vector>

#include "difftx/data/loader.h"
#include "difftx/runtime/checkpoint_store.h"
#include "difftx/runtime/device_info.h"
#include "difftx/train/evaluation.h"
#include "difftx/train/flops.h"
#include "difftx/train/metrics_log.h"
#include "difftx/train/optimizer.h"
#include "difftx/train/train_state.h"
#include "difftx/train/trainer.h"

namespace difftx {

inline constexpr const char* kTrainStateFile = "train_state.safetensors";

struct Trainer::State {
  RunConfig cfg;
  TrainOptions opt;
  CheckpointStore store;
  std::filesystem::path tokenizer_path;
  std::unique_ptr<data::TrainLoader> loader;
  std::unique_ptr<Evaluator> evaluator;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
  std::unique_ptr<AdamW> optimizer;
  std::optional<MetricsLog> metrics;
  GradientHook hook;
  TrainStateMeta meta;
  data::Batch batch;

  int step = 0;
  int start_step = 0;
  std::filesystem::path resumed_from, init_from;
  double unigram = 0;
  double tokens_per_step = 0;
  FlopCount flops;
  DeviceInfo device;

  std::optional<std::chrono::steady_clock::time_point> t0;  // this process's first step
  double train_seconds = 0;                                 // this process's step time
  int steps_here = 0;                                       // steps completed by this process
  double last_loss = 0;
  std::filesystem::path last_checkpoint;
  int last_checkpoint_step = -1;
  int last_eval_step = -1;
  std::vector<EvalPoint> evals;

  explicit State(const RunConfig& c, TrainOptions o)
      : cfg(c), opt(std::move(o)), store(c.output.dir) {}

  // trainer_setup.cpp: everything is checked before the run folder is touched.
  void setup();
  void load_weights();
  void open_run_folder();
};

}  // namespace difftx
