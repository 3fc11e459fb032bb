// Statistics of a study's repeated runs: mean and sample standard deviation over seeds, the
// Student t distribution (CDF and quantile, from the regularized incomplete beta function), and
// paired differences (same seed, same data) with a two-sided t confidence interval and p-value.
#pragma once

#include <cstddef>
#include <span>

namespace difftx::study {

// n values: mean, sample standard deviation (divisor n - 1; NaN for n < 2), min, max.
// Every field is NaN for n = 0.
struct Summary {
  std::size_t n = 0;
  double mean = 0, std = 0, min = 0, max = 0;
};
Summary summarize(std::span<const double> values);

// Regularized incomplete beta function I_x(a, b), a, b > 0, x in [0, 1].
double incomplete_beta(double x, double a, double b);

// P(T <= t) for Student's t with `df` > 0 degrees of freedom.
double student_t_cdf(double t, double df);

// The t with P(T <= t) = p, p in (0, 1), df > 0 (e.g. p = 0.975, df = 2 gives 4.3027).
double student_t_quantile(double p, double df);

// Differences d_i = a_i - b_i of paired values (a_i and b_i share seed and data). With n >= 2:
// mean +- t_{(1 + confidence) / 2, n - 1} * std / sqrt(n), the t statistic mean / (std / sqrt(n))
// and its two-sided p-value. With n < 2 the interval, t and p are NaN (one pair says nothing
// about the spread); with std = 0 the interval has zero width and p is 0 (mean != 0) or 1.
struct PairedDifference {
  std::size_t n = 0;
  double mean = 0, std = 0;
  double t_critical = 0;  // the quantile used for the interval
  double ci_low = 0, ci_high = 0;
  double t_statistic = 0, p_value = 0;
  double confidence = 0.95;

  // Whether the interval lies entirely above or below zero.
  bool excludes_zero() const { return ci_low > 0 || ci_high < 0; }
};
PairedDifference paired_difference(std::span<const double> a, std::span<const double> b,
                                   double confidence = 0.95);

// The same interval for the mean of n values (used for differences already formed).
PairedDifference mean_interval(std::span<const double> values, double confidence = 0.95);

}  // namespace difftx::study
