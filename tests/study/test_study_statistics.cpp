// Statistics of the study layer against hand computations: mean and sample std, the incomplete
// beta function and Student's t (closed forms for 1 and 2 degrees of freedom, table quantiles),
// the paired t interval and p-value, and the scaling fit on synthetic points with a known
// parameter ratio at equal loss.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "difftx/core/error.h"
#include "difftx/study/scaling_fit.h"
#include "difftx/study/statistics.h"

namespace difftx::study {
namespace {

TEST(StudyStatistics, MeanAndSampleStd) {
  const std::vector<double> v = {1, 2, 3, 4};
  const Summary s = summarize(v);
  EXPECT_EQ(s.n, 4u);
  EXPECT_DOUBLE_EQ(s.mean, 2.5);
  EXPECT_NEAR(s.std, std::sqrt(5.0 / 3.0), 1e-15);  // squares 2.25+0.25+0.25+2.25 over n-1 = 3
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.max, 4);
  const std::vector<double> one = {7};
  EXPECT_TRUE(std::isnan(summarize(one).std));
  EXPECT_TRUE(std::isnan(summarize(std::vector<double>{}).mean));
}

TEST(StudyStatistics, IncompleteBetaClosedForms) {
  for (double x : {0.0, 0.1, 0.37, 0.5, 0.93, 1.0}) {
    EXPECT_NEAR(incomplete_beta(x, 1, 1), x, 1e-14);                      // uniform
    EXPECT_NEAR(incomplete_beta(x, 3, 1), x * x * x, 1e-14);              // I_x(a, 1) = x^a
    EXPECT_NEAR(incomplete_beta(x, 1, 2), 1 - (1 - x) * (1 - x), 1e-14);  // I_x(1, b) = 1-(1-x)^b
  }
  EXPECT_NEAR(incomplete_beta(0.5, 4.5, 4.5), 0.5, 1e-14);  // symmetry
  EXPECT_THROW(incomplete_beta(1.5, 1, 1), Error);
}

TEST(StudyStatistics, StudentTAgainstClosedFormsAndTables) {
  // df = 1 is the Cauchy distribution: F(t) = 1/2 + atan(t) / pi.
  for (double t : {-3.0, -0.5, 0.0, 1.0, 12.7}) {
    EXPECT_NEAR(student_t_cdf(t, 1), 0.5 + std::atan(t) / M_PI, 1e-13) << t;
  }
  // df = 2: F(t) = 1/2 + t / (2 sqrt(2 + t^2)).
  for (double t : {-2.0, 0.3, 2.0, 4.302652729}) {
    EXPECT_NEAR(student_t_cdf(t, 2), 0.5 + t / (2 * std::sqrt(2 + t * t)), 1e-13) << t;
  }
  // Two-sided 95% critical values from the t table.
  EXPECT_NEAR(student_t_quantile(0.975, 1), 12.706204736, 1e-6);
  EXPECT_NEAR(student_t_quantile(0.975, 2), 4.302652730, 1e-8);
  EXPECT_NEAR(student_t_quantile(0.975, 3), 3.182446305, 1e-8);
  EXPECT_NEAR(student_t_quantile(0.975, 4), 2.776445105, 1e-8);
  EXPECT_NEAR(student_t_quantile(0.975, 9), 2.262157163, 1e-8);
  EXPECT_NEAR(student_t_quantile(0.975, 30), 2.042272456, 1e-8);
  EXPECT_NEAR(student_t_quantile(0.95, 5), 2.015048373, 1e-8);
  EXPECT_NEAR(student_t_quantile(0.025, 4), -2.776445105, 1e-8);
  EXPECT_EQ(student_t_quantile(0.5, 7), 0.0);
}

TEST(StudyStatistics, PairedIntervalByHand) {
  // Differences 1, 2, 4: mean 7/3, s^2 = (16/9 + 1/9 + 25/9) / 2 = 7/3, se = sqrt(7/9),
  // t = mean / se = sqrt(7), two-sided p (df 2) = 1 - t / sqrt(2 + t^2) = 1 - sqrt(7) / 3.
  const std::vector<double> a = {11, 12, 14}, b = {10, 10, 10};
  const PairedDifference d = paired_difference(a, b);
  EXPECT_EQ(d.n, 3u);
  EXPECT_NEAR(d.mean, 7.0 / 3.0, 1e-14);
  EXPECT_NEAR(d.std, std::sqrt(7.0 / 3.0), 1e-14);
  EXPECT_NEAR(d.t_critical, 4.302652730, 1e-8);
  const double half = 4.302652730 * std::sqrt(7.0 / 9.0);
  EXPECT_NEAR(d.ci_low, 7.0 / 3.0 - half, 1e-8);
  EXPECT_NEAR(d.ci_high, 7.0 / 3.0 + half, 1e-8);
  EXPECT_NEAR(d.t_statistic, std::sqrt(7.0), 1e-13);
  EXPECT_NEAR(d.p_value, 1.0 - std::sqrt(7.0) / 3.0, 1e-12);
  EXPECT_FALSE(d.excludes_zero());  // [-1.46, 6.13]

  // Four pairs (df 3): differences 0.3, 0, 0.5, 0.3; mean 0.275, s^2 = 0.1275 / 3.
  const std::vector<double> a4 = {5.1, 4.9, 5.6, 5.0}, b4 = {4.8, 4.9, 5.1, 4.7};
  const PairedDifference d4 = paired_difference(a4, b4);
  const double se = std::sqrt(0.1275 / 3.0) / 2.0;
  EXPECT_NEAR(d4.mean, 0.275, 1e-12);
  EXPECT_NEAR(d4.ci_low, 0.275 - 3.182446305 * se, 1e-8);
  EXPECT_NEAR(d4.ci_high, 0.275 + 3.182446305 * se, 1e-8);

  // A consistent shift excludes zero; the 90% interval is narrower than the 95% one.
  const std::vector<double> hi = {2.0, 2.1, 2.2, 2.05}, lo = {1.0, 1.0, 1.1, 1.0};
  EXPECT_TRUE(paired_difference(hi, lo).excludes_zero());
  EXPECT_LT(paired_difference(a4, b4, 0.9).ci_high, d4.ci_high);
}

TEST(StudyStatistics, DegenerateIntervals) {
  const std::vector<double> one_a = {3}, one_b = {1};
  const PairedDifference one = paired_difference(one_a, one_b);
  EXPECT_EQ(one.mean, 2);
  EXPECT_TRUE(std::isnan(one.ci_low) && std::isnan(one.ci_high) && std::isnan(one.p_value));
  EXPECT_FALSE(one.excludes_zero());
  const std::vector<double> same = {2, 2, 2}, zero = {1, 1, 1};
  const PairedDifference flat = paired_difference(same, zero);
  EXPECT_EQ(flat.ci_low, 1);
  EXPECT_EQ(flat.ci_high, 1);
  EXPECT_EQ(flat.p_value, 0);
  const std::vector<double> two = {1, 2};
  EXPECT_THROW(paired_difference(two, same), Error);
}

// Points exactly on log L = c_arm - alpha log N - beta log D, with the DIFF arm's intercept
// chosen so that it needs 65% of the baseline's parameters at equal loss.
std::vector<LossPoint> synthetic_points(double alpha, double beta, double ratio,
                                        const std::vector<double>& noise_per_seed) {
  const double c_base = 3.0, c_diff = c_base + alpha * std::log(ratio);
  std::vector<LossPoint> pts;
  for (std::size_t g = 0; g < noise_per_seed.size(); ++g) {
    int k = 0;
    for (double n : {1e6, 4e6, 1.6e7}) {
      for (double d : {1e7, 2e7, 4e7}) {
        for (std::size_t arm = 0; arm < 2; ++arm) {
          const double c = arm == 0 ? c_diff : c_base;
          // Seed noise: a fixed pattern scaled per seed, plus a per-seed shift of the DIFF arm
          // (which moves that seed's ratio by exp(shift / alpha)).
          const double eps = noise_per_seed[g] * ((k++ % 3) - 1.0 + (arm == 0 ? 1.0 : 0.0));
          pts.push_back(
              {arm, g, n, d, std::exp(c - alpha * std::log(n) - beta * std::log(d) + eps)});
        }
      }
    }
  }
  return pts;
}

TEST(StudyScalingFit, RecoversAKnownRatioExactly) {
  const auto pts = synthetic_points(0.3, 0.2, 0.65, {0, 0, 0});
  const ScalingAnalysis a = analyse_scaling(pts, 2, /*reference_arm=*/1, /*use_tokens=*/true);
  EXPECT_NEAR(a.fit.alpha, 0.3, 1e-10);
  EXPECT_NEAR(a.fit.beta, 0.2, 1e-10);
  EXPECT_TRUE(a.fit.uses_tokens);
  EXPECT_NEAR(a.fit.rms_log_residual, 0, 1e-10);
  ASSERT_EQ(a.ratios.size(), 1u);
  const EqualLossRatio& r = a.ratios[0];
  EXPECT_EQ(r.arm, 0u);
  EXPECT_NEAR(r.parameter_ratio, 0.65, 1e-9);
  EXPECT_NEAR(r.token_ratio, std::pow(0.65, 0.3 / 0.2), 1e-9);  // same loss gap over beta
  ASSERT_EQ(r.parameter_ratio_by_group.size(), 3u);
  for (double v : r.parameter_ratio_by_group) EXPECT_NEAR(v, 0.65, 1e-9);
  EXPECT_NEAR(r.parameter_ci_low, 0.65, 1e-9);
  EXPECT_NEAR(r.parameter_ci_high, 0.65, 1e-9);
  // Predictions reproduce the points.
  EXPECT_NEAR(a.fit.predict(pts[0].arm, pts[0].parameters, pts[0].tokens), pts[0].loss, 1e-9);
}

TEST(StudyScalingFit, NoisySeedsGiveAnIntervalAroundTheTruth) {
  const auto pts = synthetic_points(0.3, 0.2, 0.65, {0.004, -0.003, 0.006, 0.002});
  const ScalingAnalysis a = analyse_scaling(pts, 2, 1, true);
  const EqualLossRatio& r = a.ratios[0];
  EXPECT_NEAR(r.parameter_ratio, 0.65, 0.05);
  EXPECT_LT(r.parameter_ci_low, r.parameter_ci_high);
  EXPECT_LE(r.parameter_ci_low, 0.65);
  EXPECT_GE(r.parameter_ci_high, 0.65);
  // The interval is the t interval of the per-seed log ratios, exponentiated.
  std::vector<double> logs;
  for (double v : r.parameter_ratio_by_group) logs.push_back(std::log(v));
  const PairedDifference m = mean_interval(logs);
  EXPECT_NEAR(r.parameter_ci_low, std::exp(m.ci_low), 1e-12);
  EXPECT_NEAR(r.parameter_ci_high, std::exp(m.ci_high), 1e-12);
}

TEST(StudyScalingFit, WithoutTokensAndRefusals) {
  // One token count: the D term is left out and the parameter ratio still comes out.
  std::vector<LossPoint> pts;
  for (double n : {1e6, 3e6, 9e6}) {
    pts.push_back({0, 0, n, 1e8, std::exp(2.0 + 0.25 * std::log(0.5) - 0.25 * std::log(n))});
    pts.push_back({1, 0, n, 1e8, std::exp(2.0 - 0.25 * std::log(n))});
  }
  const ScalingAnalysis a = analyse_scaling(pts, 2, 1, true);
  EXPECT_FALSE(a.fit.uses_tokens);
  EXPECT_NEAR(a.ratios[0].parameter_ratio, 0.5, 1e-9);
  EXPECT_TRUE(std::isnan(a.ratios[0].token_ratio));
  EXPECT_TRUE(std::isnan(a.ratios[0].parameter_ci_low));  // one seed: no interval

  // Loss rising with size: no ratio, and the note says why.
  std::vector<LossPoint> up;
  for (double n : {1e6, 2e6}) {
    up.push_back({0, 0, n, 1e8, 1.0 + n * 1e-7});
    up.push_back({1, 0, n, 1e8, 1.1 + n * 1e-7});
  }
  const ScalingAnalysis bad = analyse_scaling(up, 2, 1, false);
  EXPECT_TRUE(std::isnan(bad.ratios[0].parameter_ratio));
  EXPECT_NE(bad.ratios[0].note.find("alpha <= 0"), std::string::npos);

  std::vector<LossPoint> one_size = {{0, 0, 1e6, 1e7, 3.0}, {1, 0, 1e6, 1e7, 3.1}};
  try {
    fit_power_law(one_size, 2, true);
    FAIL() << "one model size cannot determine alpha";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("at least two model sizes"), std::string::npos);
  }
  std::vector<LossPoint> no_arm = {{0, 0, 1e6, 1e7, 3.0}, {0, 0, 2e6, 1e7, 2.9}};
  EXPECT_THROW(fit_power_law(no_arm, 2, true), Error);
}

}  // namespace
}  // namespace difftx::study
