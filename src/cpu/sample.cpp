// CPU sampling op of the engine (the oracle of the CUDA sampling kernel): greedy, or top-k /
// top-p filtering of softmax(logits / T) and a Gumbel-max draw with counter-based uniforms,
// plus log-probabilities of the chosen token and of the most likely alternatives.
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "cpu_ops.h"

namespace difftx::cpu {
namespace {

struct RowParams {
  double temperature;
  int top_k;
  double top_p;
  std::uint64_t seed;
  std::uint32_t counter;
  int top_n;
};

RowParams row_params(const std::int32_t* p, int top_n) {
  RowParams r;
  r.temperature = std::bit_cast<float>(p[kSampleTemperature]);
  r.top_k = p[kSampleTopK];
  r.top_p = std::bit_cast<float>(p[kSampleTopP]);
  r.seed = std::uint64_t(std::uint32_t(p[kSampleSeedLo])) |
           std::uint64_t(std::uint32_t(p[kSampleSeedHi])) << 32;
  r.counter = std::uint32_t(p[kSampleCounter]);
  r.top_n = std::clamp(p[kSampleTopN], 0, top_n);
  return r;
}

// Ids in (logit desc, id asc) order: the order of decreasing probability at any temperature.
struct MoreLikely {
  const std::vector<double>& l;
  bool operator()(int a, int b) const { return l[a] > l[b] || (l[a] == l[b] && a < b); }
};

// The kept set of the host Sampler (top_k, then the top_p prefix), as a mask over ids.
std::vector<char> kept_set(const std::vector<double>& l, double lmax, const RowParams& p) {
  const std::size_t V = l.size();
  const bool use_k = p.top_k > 0 && std::size_t(p.top_k) < V;
  const bool use_p = p.top_p < 1.0;
  std::vector<char> keep(V, 0);
  if (!use_k && !use_p) {
    for (std::size_t i = 0; i < V; ++i) keep[i] = std::isfinite(l[i]);
    return keep;
  }
  std::vector<int> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::size_t kept = use_k ? std::size_t(p.top_k) : V;
  std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(kept), order.end(),
                    MoreLikely{l});
  if (use_p) {
    auto weight = [&](int id) { return std::exp((l[id] - lmax) / p.temperature); };
    double kept_sum = 0;
    for (std::size_t i = 0; i < kept; ++i) kept_sum += weight(order[i]);
    const double target = p.top_p * (1.0 - 1e-12);
    double cumulative = 0;
    for (std::size_t i = 0; i < kept; ++i) {
      cumulative += weight(order[i]) / kept_sum;
      if (cumulative >= target) {
        kept = i + 1;
        break;
      }
    }
  }
  for (std::size_t i = 0; i < kept; ++i) keep[order[i]] = std::isfinite(l[order[i]]);
  return keep;
}

}  // namespace

template <typename L, typename S>
void sample_tokens(const L* logits, i64 rows, i64 vocab, const std::int32_t* params, int top_n,
                   std::int32_t* tokens, S* logprobs, std::int32_t* top_ids, S* top_logprobs) {
#pragma omp parallel for if (rows > 1)
  for (i64 r = 0; r < rows; ++r) {
    const RowParams p = row_params(params + r * kSampleParamWords, top_n);
    std::vector<double> l(static_cast<std::size_t>(vocab));
    bool valid = vocab > 0, any_finite = false;
    int argmax = 0;
    for (i64 i = 0; i < vocab; ++i) {
      l[i] = double(logits[r * vocab + i]);
      if (std::isnan(l[i]) || l[i] == std::numeric_limits<double>::infinity()) valid = false;
      if (std::isfinite(l[i])) any_finite = true;
      if (l[i] > l[argmax]) argmax = int(i);
    }
    std::int32_t* ids_out = top_ids ? top_ids + r * top_n : nullptr;
    S* lp_out = top_logprobs ? top_logprobs + r * top_n : nullptr;
    for (int k = 0; k < top_n; ++k) {
      ids_out[k] = -1;
      lp_out[k] = S(0);
    }
    if (!valid || !any_finite) {  // NaN / +inf / nothing finite: no token (the caller reports it)
      tokens[r] = -1;
      logprobs[r] = S(0);
      continue;
    }
    const double lmax = l[argmax];
    double sum = 0;
    for (double x : l) sum += std::isfinite(x) ? std::exp(x - lmax) : 0.0;
    const double lse = lmax + std::log(sum);
    int token = argmax;
    if (p.temperature > 0) {
      const std::vector<char> keep = kept_set(l, lmax, p);
      double best = -INFINITY;
      token = -1;
      for (i64 i = 0; i < vocab; ++i) {
        if (!keep[i]) continue;
        const double u = sample_uniform(p.seed, p.counter, std::uint32_t(i));
        const double score = (l[i] - lmax) / p.temperature - std::log(-std::log(u));
        if (token < 0 || score > best) {
          best = score;
          token = int(i);
        }
      }
    }
    tokens[r] = token;
    logprobs[r] = S(l[token] - lse);
    if (p.top_n > 0) {
      std::vector<int> order(static_cast<std::size_t>(vocab));
      std::iota(order.begin(), order.end(), 0);
      const auto n = std::min<std::ptrdiff_t>(p.top_n, vocab);
      std::partial_sort(order.begin(), order.begin() + n, order.end(), MoreLikely{l});
      for (std::ptrdiff_t k = 0; k < n; ++k) {
        ids_out[k] = order[k];
        lp_out[k] = S(l[order[k]] - lse);
      }
    }
  }
}

template void sample_tokens<float, float>(const float*, i64, i64, const std::int32_t*, int,
                                          std::int32_t*, float*, std::int32_t*, float*);
template void sample_tokens<double, float>(const double*, i64, i64, const std::int32_t*, int,
                                           std::int32_t*, float*, std::int32_t*, float*);

}  // namespace difftx::cpu
