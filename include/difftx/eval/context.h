// What every evaluation task shares: the backend the models run on, the seed and the progress
// output, plus small helpers over the Backend (per-token losses from device logits, greedy
// argmax, log-softmax of one row).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "difftx/core/progress.h"
#include "difftx/model/backend.h"

namespace difftx::eval {

struct EvalContext {
  Backend* backend = nullptr;
  std::string device = "cpu";
  std::uint64_t seed = 1;
  ProgressMode progress = ProgressMode::automatic;

  ProgressOptions progress_options(const std::string& unit) const {
    ProgressOptions o;
    o.unit = unit;
    o.mode = progress;
    return o;
  }
};

// Per-row negative log-likelihood of `targets` under device logits (N, V): host (N) values,
// 0 where a target is negative (ignored).
std::vector<double> token_nll(Backend& backend, const Tensor& logits,
                              const std::vector<std::int32_t>& targets);

// log softmax(logits)[token] of one host row, in double.
double log_prob(std::span<const float> logits, std::int32_t token);

// Index of the largest logit (lowest id among ties).
std::int32_t argmax(std::span<const float> logits);

}  // namespace difftx::eval
