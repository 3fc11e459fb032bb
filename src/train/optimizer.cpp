// AdamW with global-norm clipping over the Backend ops (sum_of_squares, scale, adamw_step).
#include "difftx/train/optimizer.h"

#include <cmath>

namespace difftx {

AdamW::AdamW(Model& model, const OptimSettings& settings) : model_(model), settings_(settings) {
  Backend& b = model.backend();
  const auto specs = parameter_specs(model.config());
  m_ = ParamSet::zeros_like_specs(specs, b.param_dtype(), b.device());
  v_ = ParamSet::zeros_like_specs(specs, b.param_dtype(), b.device());
  for (const auto& s : specs) {
    bool decay = s.weight_decay;
    if (s.group == "embedding" && !settings.decay_embeddings) decay = false;
    decay_.push_back(decay);
  }
}

double AdamW::step(double lr) {
  Backend& b = model_.backend();
  ParamSet& params = model_.params();
  ParamSet& grads = model_.grads();
  double sum_sq = 0;
  for (std::size_t i = 0; i < grads.size(); ++i) sum_sq += b.sum_of_squares(grads.tensor(i));
  const double norm = std::sqrt(sum_sq);
  if (!std::isfinite(norm)) return norm;  // the caller decides (NanPolicy); nothing is changed
  if (settings_.grad_clip > 0 && norm > settings_.grad_clip) {
    const double factor = settings_.grad_clip / (norm + 1e-6);
    for (std::size_t i = 0; i < grads.size(); ++i) b.scale_inplace(grads.tensor(i), factor);
  }
  ++steps_;
  for (std::size_t i = 0; i < params.size(); ++i) {
    b.adamw_step(params.tensor(i), grads.tensor(i), m_.tensor(i), v_.tensor(i), lr, settings_.beta1,
                 settings_.beta2, settings_.eps, decay_[i] ? settings_.weight_decay : 0.0, steps_);
  }
  model_.refresh_compute_weights();
  return norm;
}

}  // namespace difftx
