// One rank's data-parallel model: its parameters and gradients in flat buffers (FlatLayout),
// the Model built on views of them, the bucketed GradientReducer and the ShardedAdamW, wired
// together. The step, per rank:
//
//   model().zero_grads();
//   for each micro-batch m of the step's grad_accum:
//     before_micro_batch(m == last);                  // arms the reducer on the last one
//     loss += model().forward_backward(in, tg, grad_scale(grad_accum)) / grad_accum;
//   loss = finish_gradients(loss);                     // waits for the reductions; global mean
//   if finite(loss): norm = step(lr);                  // ZeRO-1 update + all-gather
//
// Every rank starts from the same parameters (same seed or checkpoint); a checksum all-reduce
// at construction refuses ranks that do not.
#pragma once

#include <memory>

#include "difftx/dist/communicator.h"
#include "difftx/dist/flat_layout.h"
#include "difftx/dist/gradient_reducer.h"
#include "difftx/dist/sharded_adamw.h"
#include "difftx/model/model.h"
#include "difftx/train/run_config.h"

namespace difftx::dist {

struct DataParallelOptions {
  bool zero = true;         // ZeRO-1 (reduce-scatter, sharded AdamW, all-gather); else all-reduce
  double bucket_mb = 25.0;  // gradient bucket size (MB of param-dtype gradients)
};

class DataParallel {
 public:
  // `params`: the initial parameters (names and shapes of the config, any device/dtype the
  // backend can take), copied into the flat buffer.
  DataParallel(const ModelConfig& config, Backend& backend, const ParamSet& params,
               Communicator& comm, const OptimSettings& optim, const DataParallelOptions& options);
  ~DataParallel();

  Model& model() { return *model_; }
  Communicator& comm() { return comm_; }
  const FlatLayout& layout() const { return *layout_; }
  ShardedAdamW& optimizer() { return *optimizer_; }

  // The grad_scale of forward_backward: gradients become sums over ranks, so each rank scales
  // by 1 / (world * grad_accum) to get the mean over the global batch.
  double grad_scale(int grad_accum) const { return 1.0 / (double(comm_.world()) * grad_accum); }
  void before_micro_batch(bool last);
  // Waits for the gradient reductions; returns the mean of every rank's `local_loss`.
  double finish_gradients(double local_loss);
  // The optimizer step (see ShardedAdamW::step): the global gradient norm.
  double step(double lr) { return optimizer_->step(lr); }

 private:
  Communicator& comm_;
  std::unique_ptr<FlatLayout> layout_;
  Tensor flat_params_, flat_grads_, shard_grads_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<GradientReducer> reducer_;
  std::unique_ptr<ShardedAdamW> optimizer_;
};

}  // namespace difftx::dist
