// The training loop as a small class: setup (data, backend, model, optimizer, run folder),
// resume or initialisation, one optimizer step, evaluation, checkpoint, and run() that
// strings them together with metrics (metrics_log.h), progress and stop requests.
//
// Data-parallel training wraps step(): a GradientHook runs after the micro-batches'
// gradients are complete and before clipping and AdamW, where an all-reduce averages the
// gradients (and the loss) over ranks.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "difftx/model/model.h"
#include "difftx/train/run_config.h"

namespace difftx {

struct TrainOptions {
  // Continue from the newest complete checkpoint of output.dir.
  bool resume = false;
  // output.dir already holds a run and neither --resume nor this is given: refused. With
  // this, the old run's checkpoints and metrics are removed first (CheckpointStore::clear).
  bool overwrite = false;
  // Weights only, from a checkpoint folder or a run folder (its newest checkpoint): a new
  // run (step 0, fresh optimizer state, this config's data and schedule) starting from them.
  std::filesystem::path init_from;
  // Stop (with a checkpoint) once this many steps of the run are done (absolute, >= 1).
  std::optional<int> stop_after;
  // Poll runtime/interrupt.h's stop_requested() between steps (the CLI's Ctrl-C handling).
  bool stop_on_signal = true;
  bool quiet = false;  // no progress output (metrics still go to metrics.jsonl)
};

// Why run() returned.
enum class StopReason { completed, stop_after, signal };

struct StepResult {
  int step = 0;          // steps done after this one (1-based)
  bool skipped = false;  // non-finite loss or gradient under nan_policy "skip"
  double loss = 0;       // mean over the micro-batches
  double lr = 0;
  double grad_norm = 0;  // before clipping
  double seconds = 0;    // wall time of the step (device synchronised)
};

struct EvalPoint {
  int step = 0;
  double val_loss = 0;
  std::vector<double> lambdas;  // DIFF V1: per layer
};

struct TrainSummary {
  int start_step = 0;  // where this process began (resumed runs: > 0)
  int steps_done = 0;  // steps of the run completed
  double last_train_loss = 0;
  std::optional<double> final_val_loss;  // the last evaluation of this process, if any ran
  double unigram_entropy = 0;            // of the training tokens, nats
  double tokens_per_second = 0;          // training throughput over this process's steps
  std::int64_t parameters = 0;
  std::filesystem::path checkpoint;  // the newest checkpoint of the run folder
  StopReason stop_reason = StopReason::completed;
  int signal = 0;                // StopReason::signal: the signal number
  std::vector<EvalPoint> evals;  // this process's evaluations
};

class Trainer {
 public:
  // Sets everything up and decides where the run starts (fresh, resumed, or from
  // init_from's weights). Throws a difftx::Error for a run folder that already holds a run
  // (without resume/overwrite), a missing or mismatched data set or checkpoint, etc.
  Trainer(const RunConfig& config, TrainOptions options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Called with the model (gradients complete) and the step's loss, which it may replace.
  using GradientHook = std::function<void(Model& model, double& loss)>;
  void set_gradient_hook(GradientHook hook);

  // One optimizer step over train.grad_accum micro-batches; logged to metrics.jsonl. A
  // non-finite loss or gradient norm stops with an Error (nan_policy "stop") or is skipped.
  StepResult step();
  // Validation loss and lambda per layer at the current step; logged.
  EvalPoint evaluate();
  // Saves the current state as checkpoint step_<step_index()> (atomic), then keeps the
  // newest output.keep_last checkpoints. Returns its folder.
  std::filesystem::path checkpoint();
  // Steps until train.steps, --stop-after or a stop request, with the periodic evaluations
  // and checkpoints of the config, a final evaluation when the run completes, a final
  // checkpoint, and a summary record.
  TrainSummary run();

  int step_index() const;  // steps of the run done so far
  int start_step() const;  // where this process began
  Model& model();
  const RunConfig& config() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace difftx
