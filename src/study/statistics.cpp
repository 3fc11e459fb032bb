// Mean and spread over seeds, Student's t distribution and paired confidence intervals (see
// statistics.h). The incomplete beta function is evaluated by its continued fraction (modified
// Lentz), using the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where that converges faster.
#include "difftx/study/statistics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "difftx/core/error.h"

namespace difftx::study {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The continued fraction of I_x(a, b) without its prefactor; converges for x < (a+1)/(a+b+2).
double beta_continued_fraction(double x, double a, double b) {
  constexpr double tiny = 1e-300;
  constexpr double eps = 1e-15;
  auto guard = [](double v) { return std::fabs(v) < tiny ? tiny : v; };
  double c = 1.0;
  double d = 1.0 / guard(1.0 - (a + b) * x / (a + 1.0));
  double h = d;
  for (int m = 1; m <= 1000; ++m) {
    const double m2 = 2.0 * m;
    // Even step: d_{2m} = m (b - m) x / ((a + 2m - 1)(a + 2m)).
    double num = m * (b - m) * x / ((a + m2 - 1.0) * (a + m2));
    d = 1.0 / guard(1.0 + num * d);
    c = guard(1.0 + num / c);
    h *= d * c;
    // Odd step: d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)).
    num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0));
    d = 1.0 / guard(1.0 + num * d);
    c = guard(1.0 + num / c);
    const double step = d * c;
    h *= step;
    if (std::fabs(step - 1.0) < eps) return h;
  }
  return h;  // 1000 terms are far beyond what the degrees of freedom of a study need
}

}  // namespace

Summary summarize(std::span<const double> values) {
  Summary s;
  s.n = values.size();
  if (values.empty()) {
    s.mean = s.std = s.min = s.max = kNaN;
    return s;
  }
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / double(s.n);
  double ss = 0;
  for (double v : values) ss += (v - s.mean) * (v - s.mean);
  s.std = s.n >= 2 ? std::sqrt(ss / double(s.n - 1)) : kNaN;
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  s.min = *lo;
  s.max = *hi;
  return s;
}

double incomplete_beta(double x, double a, double b) {
  DIFFTX_CHECK(a > 0 && b > 0 && x >= 0 && x <= 1,
               "incomplete_beta: needs a, b > 0 and x in [0, 1], got x = {}, a = {}, b = {}", x, a,
               b);
  if (x == 0 || x == 1) return x;
  const double log_front =
      std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  if (x < (a + 1.0) / (a + b + 2.0)) {
    return std::exp(log_front) * beta_continued_fraction(x, a, b) / a;
  }
  return 1.0 - std::exp(log_front) * beta_continued_fraction(1.0 - x, b, a) / b;
}

double student_t_cdf(double t, double df) {
  DIFFTX_CHECK(df > 0, "student_t_cdf: degrees of freedom must be positive, got {}", df);
  if (std::isnan(t)) return kNaN;
  if (std::isinf(t)) return t > 0 ? 1.0 : 0.0;
  // P(|T| > |t|) = I_{df / (df + t^2)}(df / 2, 1 / 2).
  const double tail = 0.5 * incomplete_beta(df / (df + t * t), 0.5 * df, 0.5);
  return t > 0 ? 1.0 - tail : tail;
}

double student_t_quantile(double p, double df) {
  DIFFTX_CHECK(p > 0 && p < 1 && df > 0,
               "student_t_quantile: needs p in (0, 1) and df > 0, got p = {}, df = {}", p, df);
  if (p == 0.5) return 0.0;
  if (p < 0.5) return -student_t_quantile(1.0 - p, df);
  double lo = 0.0, hi = 1.0;
  while (student_t_cdf(hi, df) < p) {
    lo = hi;
    hi *= 2.0;
    DIFFTX_CHECK(hi < 1e300, "student_t_quantile: no quantile found for p = {}, df = {}", p, df);
  }
  // Bisection: the CDF is increasing; 200 halvings reach the resolution of a double.
  for (int i = 0; i < 200 && hi - lo > 1e-15 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (student_t_cdf(mid, df) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

PairedDifference mean_interval(std::span<const double> values, double confidence) {
  DIFFTX_CHECK(confidence > 0 && confidence < 1, "confidence must be in (0, 1), got {}",
               confidence);
  const Summary s = summarize(values);
  PairedDifference d;
  d.n = s.n;
  d.mean = s.mean;
  d.std = s.std;
  d.confidence = confidence;
  if (s.n < 2) {
    d.t_critical = d.ci_low = d.ci_high = d.t_statistic = d.p_value = kNaN;
    return d;
  }
  const double df = double(s.n - 1);
  const double se = s.std / std::sqrt(double(s.n));
  d.t_critical = student_t_quantile(0.5 * (1.0 + confidence), df);
  d.ci_low = s.mean - d.t_critical * se;
  d.ci_high = s.mean + d.t_critical * se;
  if (se == 0) {
    d.t_statistic = s.mean == 0 ? 0.0 : std::copysign(HUGE_VAL, s.mean);
    d.p_value = s.mean == 0 ? 1.0 : 0.0;
  } else {
    d.t_statistic = s.mean / se;
    d.p_value = 2.0 * student_t_cdf(-std::fabs(d.t_statistic), df);
  }
  return d;
}

PairedDifference paired_difference(std::span<const double> a, std::span<const double> b,
                                   double confidence) {
  DIFFTX_CHECK(a.size() == b.size(), "paired_difference: {} values against {}: pairs need both",
               a.size(), b.size());
  std::vector<double> d(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return mean_interval(d, confidence);
}

}  // namespace difftx::study
