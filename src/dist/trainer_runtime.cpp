// The Trainer's data-parallel runtime over DataParallel and a communicator (trainer_runtime.h).
#include "difftx/dist/trainer_runtime.h"

#include "difftx/core/error.h"
#include "difftx/dist/worker.h"

namespace difftx::dist {

TrainerRuntime::TrainerRuntime(const DistEnv& env, const DataParallelOptions& options,
                               std::chrono::milliseconds timeout)
    : env_(env), options_(options), timeout_(timeout) {}

TrainerRuntime::~TrainerRuntime() {
  dp_.reset();  // before the communicator it reduces through
  comm_.reset();
}

Model& TrainerRuntime::build_model(const ModelConfig& config, Backend& backend,
                                   const ParamSet& params, const OptimSettings& optim) {
  DIFFTX_CHECK(!dp_, "rank {}/{}: the data-parallel model was built already", env_.rank,
               env_.world);
  comm_ = join_job(env_, backend, timeout_);
  dp_ = std::make_unique<DataParallel>(config, backend, params, *comm_, optim, options_);
  comm_->reset_stats();
  return dp_->model();
}

DataParallel& TrainerRuntime::dp() {
  DIFFTX_CHECK(dp_ != nullptr, "rank {}/{}: the data-parallel model is not built yet", env_.rank,
               env_.world);
  return *dp_;
}

Communicator& TrainerRuntime::comm() {
  DIFFTX_CHECK(comm_ != nullptr, "rank {}/{}: not joined to the job yet", env_.rank, env_.world);
  return *comm_;
}

void TrainerRuntime::before_micro_batch(bool last) {
  dp().before_micro_batch(last);
}

double TrainerRuntime::grad_scale(int grad_accum) const {
  return 1.0 / (double(env_.world) * grad_accum);
}

double TrainerRuntime::finish_gradients(double local_loss) {
  return dp().finish_gradients(local_loss);
}

double TrainerRuntime::optimizer_step(double lr) {
  return dp().step(lr);
}

void TrainerRuntime::gather_optimizer_state(ParamSet& m, ParamSet& v, int& adam_steps) {
  dp().optimizer().gather_moments(0, m, v);
  adam_steps = dp().optimizer().steps_taken();
  comm().reset_stats();  // checkpoint traffic is not a step's
}

void TrainerRuntime::load_optimizer_state(const ParamSet& m, const ParamSet& v, int adam_steps) {
  dp().optimizer().load_moments(m, v);
  dp().optimizer().set_steps_taken(adam_steps);
}

std::vector<double> TrainerRuntime::sum(const std::vector<double>& values) {
  return comm().all_reduce_host(values, ReduceOp::sum);
}

std::vector<double> TrainerRuntime::max(const std::vector<double>& values) {
  return comm().all_reduce_host(values, ReduceOp::max);
}

nlohmann::json TrainerRuntime::step_metrics() {
  const CommStats& s = comm().stats();
  auto mb = [](const CollectiveStats& c) { return c.bytes / 1e6; };
  nlohmann::json j = {{"zero", dp().layout().shards() > 1},
                      {"buckets", dp().layout().buckets().size()},
                      {"reduce_scatter_ms", s.reduce_scatter.busy_ms},
                      {"all_gather_ms", s.all_gather.busy_ms},
                      {"all_reduce_ms", s.all_reduce.busy_ms},
                      {"wait_ms", s.wait_ms},
                      {"reduce_scatter_mb", mb(s.reduce_scatter)},
                      {"all_gather_mb", mb(s.all_gather)},
                      {"all_reduce_mb", mb(s.all_reduce)}};
  comm().reset_stats();
  return j;
}

}  // namespace difftx::dist
