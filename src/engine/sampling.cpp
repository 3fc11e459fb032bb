// Next-token sampling: logit checks, softmax with temperature, top-k / top-p filtering, draw.
#include "difftx/engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "difftx/core/error.h"

namespace difftx {

void validate_sampling(const SamplingConfig& c, const std::string& source) {
  if (!std::isfinite(c.temperature) || c.temperature < 0) {
    fail("{}: temperature must be a finite number >= 0 (0 = greedy), got {}", source,
         c.temperature);
  }
  if (c.top_k < 0) fail("{}: top_k must be >= 0 (0 = off), got {}", source, c.top_k);
  if (!(c.top_p > 0 && c.top_p <= 1)) {
    fail("{}: top_p must be in (0, 1] (1 = off), got {}", source, c.top_p);
  }
}

namespace {

// Throws unless logits are non-empty, free of NaN and +inf, and not all -inf.
void check_logits(std::span<const float> logits) {
  if (logits.empty()) fail("sampler: empty logits (vocabulary size 0)");
  bool any_finite = false;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    float x = logits[i];
    if (std::isnan(x)) {
      fail(
          "sampler: logit {} of {} is NaN; the model produced invalid output (check the "
          "checkpoint and the input tokens)",
          i, logits.size());
    }
    if (x == std::numeric_limits<float>::infinity()) {
      fail("sampler: logit {} of {} is +inf; the model produced invalid output", i, logits.size());
    }
    if (std::isfinite(x)) any_finite = true;
  }
  if (!any_finite) fail("sampler: all {} logits are -inf; no token can be sampled", logits.size());
}

int argmax_unchecked(std::span<const float> logits) {
  std::size_t best = 0;
  for (std::size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<int>(best);
}

}  // namespace

int argmax_logits(std::span<const float> logits) {
  check_logits(logits);
  return argmax_unchecked(logits);
}

Sampler::Sampler(const SamplingConfig& config) : config_(config), rng_(config.seed) {
  validate_sampling(config_, "sampling config");
}

double Sampler::uniform01() {
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

void Sampler::build_distribution(std::span<const float> logits) {
  check_logits(logits);
  const std::size_t V = logits.size();
  probs_.assign(V, 0.0);
  if (config_.temperature == 0) {
    probs_[static_cast<std::size_t>(argmax_unchecked(logits))] = 1.0;
    return;
  }
  // 1. softmax(logits / T) in double; -inf logits get probability 0.
  const double max_logit = logits[static_cast<std::size_t>(argmax_unchecked(logits))];
  const double inv_t = 1.0 / config_.temperature;
  double sum = 0;
  for (std::size_t i = 0; i < V; ++i) {
    double x = logits[i];
    double d = x - max_logit;  // <= 0; exactly 0 at the max, even when 1/T overflows
    double p = !std::isfinite(x) ? 0.0 : d == 0 ? 1.0 : std::exp(d * inv_t);
    probs_[i] = p;
    sum += p;
  }
  for (double& p : probs_) p /= sum;  // sum >= 1: the argmax contributes exp(0)

  const bool use_k = config_.top_k > 0 && static_cast<std::size_t>(config_.top_k) < V;
  const bool use_p = config_.top_p < 1.0;
  if (!use_k && !use_p) return;

  // 2. Order tokens by decreasing probability (ties: lower id first); only the first k matter.
  order_.resize(V);
  std::iota(order_.begin(), order_.end(), 0);
  auto more_probable = [this](int a, int b) {
    double pa = probs_[static_cast<std::size_t>(a)], pb = probs_[static_cast<std::size_t>(b)];
    return pa > pb || (pa == pb && a < b);
  };
  std::size_t kept = use_k ? static_cast<std::size_t>(config_.top_k) : V;
  std::partial_sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(kept),
                    order_.end(), more_probable);
  double kept_sum = 0;
  for (std::size_t i = 0; i < kept; ++i) kept_sum += probs_[static_cast<std::size_t>(order_[i])];

  // 3. Nucleus over the renormalised top-k set: smallest prefix reaching top_p (a relative
  // 1e-12 slack so that a prefix summing to exactly top_p in exact arithmetic qualifies).
  if (use_p) {
    const double target = config_.top_p * (1.0 - 1e-12);
    double cumulative = 0;
    for (std::size_t i = 0; i < kept; ++i) {
      cumulative += probs_[static_cast<std::size_t>(order_[i])] / kept_sum;
      if (cumulative >= target) {
        kept = i + 1;
        break;
      }
    }
    kept_sum = 0;
    for (std::size_t i = 0; i < kept; ++i) kept_sum += probs_[static_cast<std::size_t>(order_[i])];
  }

  // 4. Renormalise the kept tokens; everything else gets 0.
  kept_.assign(V, 0.0);
  for (std::size_t i = 0; i < kept; ++i) {
    auto id = static_cast<std::size_t>(order_[i]);
    kept_[id] = probs_[id] / kept_sum;
  }
  probs_.swap(kept_);
}

std::vector<double> Sampler::distribution(std::span<const float> logits) {
  build_distribution(logits);
  return probs_;
}

int Sampler::sample(std::span<const float> logits) {
  if (config_.temperature == 0) return argmax_logits(logits);
  build_distribution(logits);
  double total = 0;
  for (double p : probs_) total += p;
  const double u = uniform01() * total;
  double cumulative = 0;
  int last_positive = -1;
  for (std::size_t i = 0; i < probs_.size(); ++i) {
    if (probs_[i] <= 0) continue;
    cumulative += probs_[i];
    last_positive = static_cast<int>(i);
    if (u < cumulative) return last_positive;
  }
  return last_positive;  // u fell past the last sum by rounding: the last kept token
}

}  // namespace difftx
