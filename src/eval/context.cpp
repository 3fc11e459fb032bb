// Backend helpers shared by the evaluation tasks (context.h).
#include "difftx/eval/context.h"

#include <cmath>

#include "difftx/core/error.h"

namespace difftx::eval {

std::vector<double> token_nll(Backend& backend, const Tensor& logits,
                              const std::vector<std::int32_t>& targets) {
  const std::int64_t n = std::int64_t(targets.size());
  DIFFTX_CHECK(n > 0 && logits.numel() % n == 0, "token_nll: {} targets for logits {}", n,
               logits.describe());
  Tensor host = Tensor::empty({n}, DType::i32);
  std::copy(targets.begin(), targets.end(), host.data<std::int32_t>());
  Tensor dev = backend.device() == Device::cpu ? host : host.to(backend.device());
  Tensor losses = Tensor::empty({n}, backend.param_dtype(), backend.device());
  backend.cross_entropy_forward(logits, dev, losses);
  std::vector<double> out = losses.to(Device::cpu).to_double_vector();
  for (std::int64_t i = 0; i < n; ++i) {
    if (targets[std::size_t(i)] < 0) out[std::size_t(i)] = 0;
  }
  return out;
}

double log_prob(std::span<const float> logits, std::int32_t token) {
  DIFFTX_CHECK(token >= 0 && std::size_t(token) < logits.size(), "token {} outside [0, {})", token,
               logits.size());
  double mx = -INFINITY;
  for (float x : logits) mx = std::max(mx, double(x));
  double sum = 0;
  for (float x : logits) sum += std::exp(double(x) - mx);
  return double(logits[std::size_t(token)]) - mx - std::log(sum);
}

std::int32_t argmax(std::span<const float> logits) {
  DIFFTX_CHECK(!logits.empty(), "argmax of no logits");
  std::size_t best = 0;
  for (std::size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return std::int32_t(best);
}

}  // namespace difftx::eval
