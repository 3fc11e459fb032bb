// Bucketed gradient reduction that overlaps the backward pass. The model's gradients live in
// one flat buffer (FlatLayout); the reducer listens to Model's gradients-ready hook and, on the
// step's last micro-batch, launches one collective per bucket as soon as the bucket's last
// gradient is final, while the backward of the earlier layers goes on:
//   ZeRO-1 (layout.shards() == world): reduce-scatter of the bucket into this rank's chunk of the
//          shard gradient buffer (sum over ranks);
//   plain  (layout.shards() == 1):     all-reduce of the bucket in place.
// Gradients are sums: the trainer scales the loss by 1 / (world * grad_accum) so they come out
// as the mean over the global batch.
#pragma once

#include <cstddef>
#include <vector>

#include "difftx/dist/communicator.h"
#include "difftx/dist/flat_layout.h"
#include "difftx/model/model.h"

namespace difftx::dist {

class GradientReducer {
 public:
  // flat_grads (layout.total()): the buffer the model's gradients are views of; shard_grads
  // (layout.shard_size()): the reduce-scatter target (ZeRO-1; unused when shards == 1).
  GradientReducer(Model& model, Communicator& comm, const FlatLayout& layout, Tensor flat_grads,
                  Tensor shard_grads);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // The next forward_backward is the step's last micro-batch: reduce during its backward.
  void arm();
  // After that forward_backward: launches any bucket the hook did not (none, normally), then
  // waits (with the communicator's deadline) until every reduction is complete.
  void finish();

  // The reduced gradient this rank's optimizer reads: shard_grads (ZeRO-1) or flat_grads.
  const Tensor& reduced() const { return shards_ > 1 ? shard_grads_ : flat_grads_; }

 private:
  void on_ready(std::span<const std::size_t> params);
  void launch(std::size_t bucket);

  Model& model_;
  Communicator& comm_;
  const FlatLayout& layout_;
  Tensor flat_grads_, shard_grads_;
  int shards_;
  bool armed_ = false;
  std::vector<std::size_t> pending_;  // per bucket: gradients not yet final
  std::size_t next_ = 0;              // first bucket not launched
};

}  // namespace difftx::dist
