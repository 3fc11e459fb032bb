// The Trainer's data-parallel runtime (train/parallel.h) over dist's pieces: it joins the job
// (MPI or NCCL, worker.h) when the Trainer hands it the backend, then keeps the rank's
// DataParallel (flat buffers, bucketed reduction, ZeRO-1 AdamW) and reports the communication
// time and volume of each step.
#pragma once

#include <chrono>
#include <memory>

#include "difftx/dist/communicator.h"
#include "difftx/dist/data_parallel.h"
#include "difftx/dist/environment.h"
#include "difftx/train/parallel.h"

namespace difftx::dist {

class TrainerRuntime final : public ParallelRuntime {
 public:
  TrainerRuntime(const DistEnv& env, const DataParallelOptions& options,
                 std::chrono::milliseconds timeout);
  ~TrainerRuntime() override;

  int rank() const override { return env_.rank; }
  int world() const override { return env_.world; }

  Model& build_model(const ModelConfig& config, Backend& backend, const ParamSet& params,
                     const OptimSettings& optim) override;
  void before_micro_batch(bool last) override;
  double grad_scale(int grad_accum) const override;
  double finish_gradients(double local_loss) override;
  double optimizer_step(double lr) override;
  void gather_optimizer_state(ParamSet& m, ParamSet& v, int& adam_steps) override;
  void load_optimizer_state(const ParamSet& m, const ParamSet& v, int adam_steps) override;
  std::vector<double> sum(const std::vector<double>& values) override;
  std::vector<double> max(const std::vector<double>& values) override;
  nlohmann::json step_metrics() override;

  // The communicator (after build_model).
  Communicator& comm();

 private:
  DataParallel& dp();

  DistEnv env_;
  DataParallelOptions options_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Communicator> comm_;
  std::unique_ptr<DataParallel> dp_;
};

}  // namespace difftx::dist
