// Tests of the token sampler: greedy, determinism, top-k / top-p support, empirical frequencies.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "difftx/core/error.h"
#include "difftx/engine/sampling.h"

namespace difftx {
namespace {

SamplingConfig cfg(double temperature, int top_k = 0, double top_p = 1.0, std::uint64_t seed = 42) {
  SamplingConfig c;
  c.temperature = temperature;
  c.top_k = top_k;
  c.top_p = top_p;
  c.seed = seed;
  return c;
}

std::vector<float> random_logits(int n, std::uint64_t seed, float scale = 3.0f) {
  std::mt19937_64 rng(seed);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v)
    x = scale * (static_cast<float>(rng() >> 40) / static_cast<float>(1 << 24) - 0.5f);
  return v;
}

// Logits whose softmax (T = 1) is proportional to 1/2, 1/4, 1/8, ... over n tokens.
std::vector<float> halving_logits(int n) {
  std::vector<float> v;
  for (int i = 0; i < n; ++i) v.push_back(static_cast<float>(-i * std::log(2.0)));
  return v;
}

std::vector<double> softmax(const std::vector<float>& logits, double t) {
  double m = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p;
  double s = 0;
  for (float x : logits) {
    p.push_back(std::exp((x - m) / t));
    s += p.back();
  }
  for (auto& x : p) x /= s;
  return p;
}

std::vector<int> counts(Sampler& s, const std::vector<float>& logits, int draws) {
  std::vector<int> c(logits.size(), 0);
  for (int i = 0; i < draws; ++i) {
    int id = s.sample(logits);
    EXPECT_GE(id, 0);
    EXPECT_LT(id, static_cast<int>(logits.size()));
    c[static_cast<std::size_t>(id)]++;
  }
  return c;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Sampler, GreedyPicksArgmaxLowestAmongTies) {
  Sampler s(cfg(0.0));
  std::vector<float> logits = {0.1f, 2.5f, -1.0f, 2.5f, 0.0f};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(s.sample(logits), 1);
  EXPECT_EQ(argmax_logits(logits), 1);
  auto d = s.distribution(logits);
  EXPECT_EQ(d, (std::vector<double>{0, 1, 0, 0, 0}));
  std::vector<float> with_masked = {-std::numeric_limits<float>::infinity(), -5.0f, -7.0f};
  EXPECT_EQ(s.sample(with_masked), 1);
}

TEST(Sampler, SameSeedSameTokensOtherSeedOtherTokens) {
  auto logits = random_logits(50, 7, 2.0f);
  Sampler a(cfg(1.0, 0, 1.0, 1234)), b(cfg(1.0, 0, 1.0, 1234)), c(cfg(1.0, 0, 1.0, 1235));
  std::vector<int> ta, tb, tc;
  for (int i = 0; i < 500; ++i) {
    ta.push_back(a.sample(logits));
    tb.push_back(b.sample(logits));
    tc.push_back(c.sample(logits));
  }
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);
  // distribution() consumes no randomness: interleaving it does not change the sequence.
  Sampler d(cfg(1.0, 0, 1.0, 1234));
  for (int i = 0; i < 500; ++i) {
    (void)d.distribution(logits);
    EXPECT_EQ(d.sample(logits), ta[static_cast<std::size_t>(i)]) << "draw " << i;
  }
}

TEST(Sampler, TopKOneEqualsGreedy) {
  Sampler greedy(cfg(0.0));
  Sampler k1(cfg(1.5, 1, 1.0, 99));
  for (std::uint64_t trial = 0; trial < 200; ++trial) {
    auto logits = random_logits(37, trial);
    EXPECT_EQ(k1.sample(logits), greedy.sample(logits)) << "trial " << trial;
  }
}

TEST(Sampler, TopKRestrictsSupport) {
  auto logits = random_logits(40, 3, 1.0f);  // fairly flat: many tokens are likely without top-k
  std::vector<int> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  std::sort(ids.begin(), ids.end(), [&](int a, int b) {
    return logits[static_cast<std::size_t>(a)] > logits[static_cast<std::size_t>(b)];
  });
  std::set<int> top5(ids.begin(), ids.begin() + 5);

  Sampler s(cfg(1.0, 5, 1.0, 5));
  auto c = counts(s, logits, 20000);
  for (std::size_t i = 0; i < c.size(); ++i) {
    if (top5.count(static_cast<int>(i)))
      EXPECT_GT(c[i], 0) << "top-5 token " << i << " never drawn";
    else
      EXPECT_EQ(c[i], 0) << "token " << i << " outside the top 5 was drawn";
  }
  // Without top-k, tokens outside the top 5 do get drawn (so the check above can fail).
  Sampler all(cfg(1.0, 0, 1.0, 5));
  auto c_all = counts(all, logits, 20000);
  int outside = 0;
  for (std::size_t i = 0; i < c_all.size(); ++i)
    if (!top5.count(static_cast<int>(i))) outside += c_all[i];
  EXPECT_GT(outside, 1000);
}

TEST(Sampler, TopPKeepsSmallestPrefixReachingP) {
  auto logits = halving_logits(12);  // p ~ 1/2, 1/4, 1/8, ...
  Sampler s(cfg(1.0, 0, 0.7, 11));
  auto d = s.distribution(logits);  // 1/2 < 0.7 <= 3/4: keep {0, 1}, renormalised
  EXPECT_NEAR(d[0], 2.0 / 3.0, 1e-3);
  EXPECT_NEAR(d[1], 1.0 / 3.0, 1e-3);
  for (std::size_t i = 2; i < d.size(); ++i) EXPECT_EQ(d[i], 0.0);
  auto c = counts(s, logits, 30000);
  EXPECT_EQ(c[0] + c[1], 30000);
  EXPECT_NEAR(c[0] / 30000.0, d[0], 0.015);

  // A prefix that reaches p exactly qualifies: p = 0.75 still keeps two tokens.
  std::vector<float> exact = {std::log(0.5f), std::log(0.25f), std::log(0.25f)};
  Sampler e(cfg(1.0, 0, 0.75, 1));
  auto de = e.distribution(exact);
  EXPECT_NEAR(de[0], 2.0 / 3.0, 1e-6);
  EXPECT_NEAR(de[1], 1.0 / 3.0, 1e-6);
  EXPECT_EQ(de[2], 0.0);
}

TEST(Sampler, TopPAlwaysKeepsAtLeastOneToken) {
  auto logits = random_logits(20, 4);
  Sampler s(cfg(1.0, 0, 1e-9, 8));
  Sampler greedy(cfg(0.0));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(s.sample(logits), greedy.sample(logits));
}

TEST(Sampler, TopPAppliesToTheRenormalisedTopK) {
  auto logits = halving_logits(8);
  // Top-3 renormalised: 4/7, 2/7, 1/7; cumulative 0.571, 0.857 >= 0.85: two tokens survive.
  // (Over the unrenormalised probabilities 0.5 + 0.25 < 0.85 would have kept three.)
  Sampler s(cfg(1.0, 3, 0.85, 2));
  auto d = s.distribution(logits);
  EXPECT_NEAR(d[0], 2.0 / 3.0, 2e-3);
  EXPECT_NEAR(d[1], 1.0 / 3.0, 2e-3);
  for (std::size_t i = 2; i < d.size(); ++i) EXPECT_EQ(d[i], 0.0) << i;
}

TEST(Sampler, DistributionIsSoftmaxOverTemperature) {
  auto logits = random_logits(30, 9);
  for (double t : {0.25, 0.8, 1.0, 3.0}) {
    Sampler s(cfg(t));
    auto d = s.distribution(logits);
    auto ref = softmax(logits, t);
    for (std::size_t i = 0; i < d.size(); ++i)
      EXPECT_NEAR(d[i], ref[i], 1e-12) << "T=" << t << " i=" << i;
  }
  // A tiny temperature is greedy in effect, with no overflow.
  Sampler cold(cfg(1e-300));
  auto d = cold.distribution(logits);
  EXPECT_EQ(d[static_cast<std::size_t>(argmax_logits(logits))], 1.0);
}

TEST(Sampler, EmpiricalFrequenciesMatchProbabilities) {
  auto logits = random_logits(10, 21, 2.0f);
  Sampler s(cfg(0.8, 0, 1.0, 2024));
  auto p = s.distribution(logits);
  const int n = 100000;
  auto c = counts(s, logits, n);
  double chi2 = 0;
  for (std::size_t i = 0; i < p.size(); ++i) {
    ASSERT_GT(p[i] * n, 5.0) << "expected count too small for a chi-square test";
    double e = p[i] * n;
    chi2 += (c[i] - e) * (c[i] - e) / e;
  }
  // 9 degrees of freedom: P(chi2 > 27.88) = 0.001 for a correct sampler.
  EXPECT_LT(chi2, 27.88);
  // Same with top-k and top-p active, over the filtered support only.
  Sampler f(cfg(1.0, 6, 0.9, 77));
  auto pf = f.distribution(logits);
  auto cf = counts(f, logits, n);
  double chi2f = 0;
  int dof = -1;
  for (std::size_t i = 0; i < pf.size(); ++i) {
    if (pf[i] == 0) {
      EXPECT_EQ(cf[i], 0) << i;
      continue;
    }
    double e = pf[i] * n;
    chi2f += (cf[i] - e) * (cf[i] - e) / e;
    ++dof;
  }
  ASSERT_GE(dof, 2);
  ASSERT_LE(dof, 5);
  EXPECT_LT(chi2f, 20.52);  // 99.9% quantile for 5 degrees of freedom (fewer dof: stricter)
}

TEST(Sampler, MaskedTokensAreNeverDrawn) {
  const float ninf = -std::numeric_limits<float>::infinity();
  std::vector<float> logits = {ninf, 0.0f, ninf, 0.0f, ninf};
  Sampler s(cfg(1.0, 0, 1.0, 3));
  auto c = counts(s, logits, 5000);
  EXPECT_EQ(c[0] + c[2] + c[4], 0);
  EXPECT_GT(c[1], 2000);
  EXPECT_GT(c[3], 2000);
}

TEST(Sampler, BadLogitsAreErrors) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (double t : {0.0, 1.0}) {
    Sampler s(cfg(t));
    std::vector<float> with_nan = {0.0f, 1.0f, nan, 2.0f};
    std::string msg = error_of([&] { s.sample(with_nan); });
    EXPECT_NE(msg.find("logit 2 of 4 is NaN"), std::string::npos) << msg;
    msg = error_of([&] { s.distribution(with_nan); });
    EXPECT_NE(msg.find("NaN"), std::string::npos) << msg;
    std::vector<float> with_inf = {0.0f, inf};
    msg = error_of([&] { s.sample(with_inf); });
    EXPECT_NE(msg.find("logit 1 of 2 is +inf"), std::string::npos) << msg;
    std::vector<float> all_masked = {-inf, -inf};
    msg = error_of([&] { s.sample(all_masked); });
    EXPECT_NE(msg.find("all 2 logits are -inf"), std::string::npos) << msg;
    msg = error_of([&] { s.sample(std::span<const float>()); });
    EXPECT_NE(msg.find("empty logits"), std::string::npos) << msg;
  }
}

TEST(Sampler, ConfigValidation) {
  auto msg = error_of([] { Sampler s(cfg(-0.5)); });
  EXPECT_NE(msg.find("temperature"), std::string::npos) << msg;
  msg = error_of([] { Sampler s(cfg(std::nan(""))); });
  EXPECT_NE(msg.find("temperature"), std::string::npos) << msg;
  msg = error_of([] { Sampler s(cfg(1.0, -1)); });
  EXPECT_NE(msg.find("top_k must be >= 0"), std::string::npos) << msg;
  for (double p : {0.0, -0.1, 1.5, std::nan("")}) {
    msg = error_of([p] { Sampler s(cfg(1.0, 0, p)); });
    EXPECT_NE(msg.find("top_p must be in (0, 1]"), std::string::npos) << msg;
  }
  EXPECT_NO_THROW(Sampler(cfg(0.0, 0, 1.0)));
  EXPECT_NO_THROW(Sampler(cfg(2.0, 1000, 0.01)));  // top_k above the vocabulary is fine
  msg = error_of([] { validate_sampling(cfg(1.0, 0, 2.0), "generate --top-p"); });
  EXPECT_NE(msg.find("generate --top-p: top_p"), std::string::npos) << msg;
}

}  // namespace
}  // namespace difftx
