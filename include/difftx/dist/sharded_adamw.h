// ZeRO-1 AdamW: each rank keeps the AdamW moments of its shard only (FlatLayout: chunk r of
// every bucket) and updates only its chunk of the f32 master weights; an all-gather per bucket
// then gives every rank the whole updated model. With a layout of one shard it is plain
// data-parallel AdamW (moments replicated, no all-gather).
//
// Same arithmetic as difftx::AdamW (decoupled decay on matrices only, embeddings per
// OptimSettings::decay_embeddings, global-norm clipping): the global norm is the square root of
// the all-reduced sum of every rank's shard sum of squares, so every rank takes the same
// decision (clip, or skip a non-finite step) from the same number.
#pragma once

#include <vector>

#include "difftx/dist/communicator.h"
#include "difftx/dist/flat_layout.h"
#include "difftx/model/model.h"
#include "difftx/train/run_config.h"

namespace difftx::dist {

class ShardedAdamW {
 public:
  // flat_params (layout.total()): the buffer the model's parameters are views of; reduced: the
  // reducer's output (GradientReducer::reduced()).
  ShardedAdamW(Model& model, const OptimSettings& settings, Communicator& comm,
               const FlatLayout& layout, Tensor flat_params, Tensor reduced);

  // The global gradient norm before clipping, the same on every rank. Non-finite: nothing is
  // changed (the caller applies the NaN policy). Else clips, updates this rank's shard, gathers
  // the whole model and refreshes the model's compute weights.
  double step(double lr);

  int steps_taken() const { return steps_; }
  void set_steps_taken(int steps) { steps_ = steps; }

  // Collective: the whole moments, per parameter (host f32 tensors named like the parameters),
  // assembled on `root`; other ranks get empty sets.
  void gather_moments(int root, ParamSet& m, ParamSet& v);
  // Loads this rank's shard from whole per-parameter moments (any device, f32 or f64; names and
  // shapes of the model's parameters), as saved by any world size.
  void load_moments(const ParamSet& m, const ParamSet& v);

  // Bytes of optimizer state this rank holds (moments), for reports.
  std::int64_t state_bytes() const { return m_.nbytes() + v_.nbytes(); }

 private:
  Model& model_;
  OptimSettings settings_;
  Communicator& comm_;
  const FlatLayout& layout_;
  Tensor flat_params_, reduced_;
  Tensor m_, v_;  // (shard_size) in the param dtype on the device
  int shard_;
  std::vector<FlatSegment> segments_;
  std::vector<bool> decay_;  // per parameter
  int steps_ = 0;
};

}  // namespace difftx::dist
