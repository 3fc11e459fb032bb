// Data parallelism as the Trainer sees it. src/dist implements it (dist::TrainerRuntime: NCCL or
// MPI collectives, bucketed gradient reduction overlapping the backward, ZeRO-1 AdamW); the
// Trainer stays the one training loop. With a runtime (TrainOptions::parallel) the Trainer
//   - draws this rank's rows of every global batch (data.batch_size is the global micro-batch,
//     split evenly over the ranks) and its share of the validation windows;
//   - builds the model and its optimizer through the runtime, and steps through it;
//   - averages the loss and the validation loss over the ranks;
//   - writes the run folder (metrics, checkpoints) on rank 0 only, after gathering the sharded
//     optimizer state there; every rank reads a checkpoint it resumes from.
// Every call is collective (all ranks make it, in the same order) unless it says otherwise.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "difftx/model/model.h"
#include "difftx/train/run_config.h"

namespace difftx {

class ParallelRuntime {
 public:
  virtual ~ParallelRuntime() = default;

  virtual int rank() const = 0;   // local
  virtual int world() const = 0;  // local

  // This rank's model, built from the run's initial parameters (the same on every rank), with
  // its optimizer. The runtime owns both.
  virtual Model& build_model(const ModelConfig& config, Backend& backend, const ParamSet& params,
                             const OptimSettings& optim) = 0;

  // One step: before_micro_batch(m == last) before each micro-batch's forward_backward (local),
  // run with grad_scale(grad_accum) (local); then finish_gradients with this rank's mean loss
  // (the mean over ranks comes back) and, when finite, optimizer_step (the global gradient
  // norm before clipping; non-finite: nothing was changed, on any rank).
  virtual void before_micro_batch(bool last) = 0;
  virtual double grad_scale(int grad_accum) const = 0;
  virtual double finish_gradients(double local_loss) = 0;
  virtual double optimizer_step(double lr) = 0;

  // Optimizer state as one process keeps it (AdamW moments per parameter, host tensors named
  // like the parameters): gathered on rank 0 (other ranks get empty sets), and loaded from such
  // sets saved at any world size.
  virtual void gather_optimizer_state(ParamSet& m, ParamSet& v, int& adam_steps) = 0;
  virtual void load_optimizer_state(const ParamSet& m, const ParamSet& v, int adam_steps) = 0;

  // Element-wise sum and maximum over the ranks.
  virtual std::vector<double> sum(const std::vector<double>& values) = 0;
  virtual std::vector<double> max(const std::vector<double>& values) = 0;

  // Fields for this step's "train" record (communication time and volume since the last call);
  // local.
  virtual nlohmann::json step_metrics() = 0;
};

}  // namespace difftx
