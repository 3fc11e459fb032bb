// AdamW over a model's parameters: decoupled weight decay on matrices only (norm gains and
// DIFF lambda vectors are never decayed; embeddings per OptimSettings::decay_embeddings), global
// gradient-norm clipping, fp32 (or fp64 on the CPU oracle) moments on the backend's device.
#pragma once

#include "difftx/model/model.h"
#include "difftx/train/run_config.h"

namespace difftx {

class AdamW {
 public:
  AdamW(Model& model, const OptimSettings& settings);

  // Clips the gradients to settings.grad_clip (if > 0) and applies one AdamW step with `lr`;
  // refreshes the model's compute weights. Returns the global gradient norm before clipping.
  double step(double lr);

  int steps_taken() const { return steps_; }
  void set_steps_taken(int steps) { steps_ = steps; }
  ParamSet& first_moments() { return m_; }
  ParamSet& second_moments() { return v_; }
  bool decays(std::size_t param_index) const { return decay_[param_index]; }

 private:
  Model& model_;
  OptimSettings settings_;
  ParamSet m_, v_;
  std::vector<bool> decay_;
  int steps_ = 0;
};

}  // namespace difftx
