// Next-token sampling on the host from logits: greedy, temperature, top-k and nucleus (top-p)
// filtering. The reference for the engine's device sampler, and the sampler of the CPU path.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace difftx {

struct SamplingConfig {
  double temperature = 0.8;  // >= 0; 0 = greedy argmax (top_k, top_p and seed then unused)
  int top_k = 0;             // >= 0; 0 = off, else keep the k most probable tokens
  double top_p = 1.0;        // in (0, 1]; 1 = off, else nucleus filtering
  std::uint64_t seed = 0;    // seeds the generator: same seed + same logits = same tokens
};

// Throws difftx::Error (naming `source` and the field) unless temperature is finite and >= 0,
// top_k >= 0 and top_p is in (0, 1].
void validate_sampling(const SamplingConfig& config, const std::string& source);

// Draws token ids from logits. Deterministic: a std::mt19937_64 seeded with config.seed, and
// uniforms built from its raw 53 high bits (no std::*_distribution, whose output differs
// between standard libraries). Not thread-safe: use one Sampler per decoding stream.
//
// For temperature T > 0 the distribution is built in double precision as
//   1. p = softmax(logits / T)
//   2. top_k > 0: keep the k most probable tokens (ties broken by lower token id)
//   3. renormalise the kept tokens, then top_p < 1: keep the smallest prefix of them (most
//      probable first) whose cumulative probability is >= top_p, at least one token
//   4. renormalise the kept tokens and draw one.
// T == 0 returns the argmax (lowest id among ties) and consumes no randomness.
// Logits may contain -inf (masked tokens) but not NaN or +inf, and not only -inf.
class Sampler {
 public:
  // Validates the config (see validate_sampling) with source "sampling config".
  explicit Sampler(const SamplingConfig& config);

  const SamplingConfig& config() const { return config_; }

  // One token id in [0, logits.size()). Throws difftx::Error on empty logits, NaN or +inf
  // (naming the first bad index) or when every logit is -inf.
  int sample(std::span<const float> logits);

  // The final distribution that sample() draws from (steps 1-4 above; one-hot at the argmax
  // for T == 0), over all logits.size() tokens, filtered-out tokens at 0. Same errors as
  // sample(); consumes no randomness.
  std::vector<double> distribution(std::span<const float> logits);

 private:
  // Checks the logits and fills probs_ (sized like logits) with the final distribution.
  void build_distribution(std::span<const float> logits);
  double uniform01();  // in [0, 1)

  SamplingConfig config_;
  std::mt19937_64 rng_;
  std::vector<double> probs_;  // (V,) normalised kept probabilities, 0 elsewhere
  std::vector<double> kept_;   // (V,) scratch for the filtered distribution
  std::vector<int> order_;     // (V,) scratch: token ids, most probable first
};

// Index of the largest logit (lowest index among ties), after the same checks as sample().
int argmax_logits(std::span<const float> logits);

}  // namespace difftx
