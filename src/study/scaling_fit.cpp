// Least-squares fit of log loss against log parameters and log tokens with one intercept per
// arm, and the parameter / token ratios at equal loss with a per-seed t interval (see
// scaling_fit.h). The normal equations are small (arms + 2 unknowns) and solved by Gaussian
// elimination with partial pivoting, on centred logs for conditioning.
#include "difftx/study/scaling_fit.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "difftx/core/error.h"
#include "difftx/study/statistics.h"

namespace difftx::study {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Solves a x = b in place (a: n x n row-major). Throws when the system is singular.
std::vector<double> solve(std::vector<double> a, std::vector<double> b, std::size_t n) {
  double scale = 0;
  for (double v : a) scale = std::max(scale, std::fabs(v));
  for (std::size_t col = 0; col < n; ++col) {
    std::size_t pivot = col;
    for (std::size_t r = col + 1; r < n; ++r) {
      if (std::fabs(a[r * n + col]) > std::fabs(a[pivot * n + col])) pivot = r;
    }
    if (std::fabs(a[pivot * n + col]) <= 1e-12 * scale) {
      fail(
          "the loss fit is underdetermined: the points do not separate the arms, the parameter "
          "counts and the token counts (give at least two model sizes and evaluations at "
          "several token counts)");
    }
    if (pivot != col) {
      for (std::size_t c = 0; c < n; ++c) std::swap(a[col * n + c], a[pivot * n + c]);
      std::swap(b[col], b[pivot]);
    }
    for (std::size_t r = col + 1; r < n; ++r) {
      const double f = a[r * n + col] / a[col * n + col];
      if (f == 0) continue;
      for (std::size_t c = col; c < n; ++c) a[r * n + c] -= f * a[col * n + c];
      b[r] -= f * b[col];
    }
  }
  std::vector<double> x(n);
  for (std::size_t i = n; i-- > 0;) {
    double s = b[i];
    for (std::size_t c = i + 1; c < n; ++c) s -= a[i * n + c] * x[c];
    x[i] = s / a[i * n + i];
  }
  return x;
}

std::size_t distinct(std::span<const LossPoint> points, double LossPoint::*field) {
  std::set<double> values;
  for (const auto& p : points) values.insert(p.*field);
  return values.size();
}

double ratio_of(double log_gap, double exponent) {
  return exponent > 0 ? std::exp(log_gap / exponent) : kNaN;
}

}  // namespace

double PowerLawFit::predict(std::size_t arm, double parameters, double tokens) const {
  double log_loss = intercept.at(arm) - alpha * std::log(parameters);
  if (uses_tokens) log_loss -= beta * std::log(tokens);
  return std::exp(log_loss);
}

PowerLawFit fit_power_law(std::span<const LossPoint> points, std::size_t arms, bool use_tokens) {
  DIFFTX_CHECK(arms >= 1, "the loss fit needs at least one arm");
  std::vector<std::size_t> per_arm(arms, 0);
  for (const auto& p : points) {
    DIFFTX_CHECK(p.arm < arms, "loss point of arm {} but only {} arms", p.arm, arms);
    DIFFTX_CHECK(p.parameters > 0 && p.tokens > 0 && p.loss > 0 && std::isfinite(p.loss),
                 "the loss fit needs positive parameters, tokens and losses, got N = {}, D = {}, "
                 "L = {}",
                 p.parameters, p.tokens, p.loss);
    ++per_arm[p.arm];
  }
  for (std::size_t a = 0; a < arms; ++a) {
    DIFFTX_CHECK(per_arm[a] > 0, "the loss fit has no point of arm {}", a);
  }
  DIFFTX_CHECK(distinct(points, &LossPoint::parameters) >= 2,
               "the loss fit needs at least two model sizes (parameter counts), got {}",
               distinct(points, &LossPoint::parameters));
  PowerLawFit fit;
  fit.uses_tokens = use_tokens && distinct(points, &LossPoint::tokens) >= 2;
  fit.points = points.size();

  // Centred regressors: x_N = log N - mean, x_D = log D - mean; intercepts are restored after.
  double mean_n = 0, mean_d = 0;
  for (const auto& p : points) {
    mean_n += std::log(p.parameters);
    mean_d += std::log(p.tokens);
  }
  mean_n /= double(points.size());
  mean_d /= double(points.size());
  const std::size_t k = arms + 1 + (fit.uses_tokens ? 1 : 0);
  std::vector<double> ata(k * k, 0.0), aty(k, 0.0), row(k);
  for (const auto& p : points) {
    std::fill(row.begin(), row.end(), 0.0);
    row[p.arm] = 1.0;
    row[arms] = -(std::log(p.parameters) - mean_n);
    if (fit.uses_tokens) row[arms + 1] = -(std::log(p.tokens) - mean_d);
    const double y = std::log(p.loss);
    for (std::size_t i = 0; i < k; ++i) {
      aty[i] += row[i] * y;
      for (std::size_t j = 0; j < k; ++j) ata[i * k + j] += row[i] * row[j];
    }
  }
  const std::vector<double> x = solve(ata, aty, k);
  fit.alpha = x[arms];
  fit.beta = fit.uses_tokens ? x[arms + 1] : 0.0;
  fit.intercept.resize(arms);
  for (std::size_t a = 0; a < arms; ++a) {
    fit.intercept[a] = x[a] + fit.alpha * mean_n + (fit.uses_tokens ? fit.beta * mean_d : 0.0);
  }
  double ss = 0;
  for (const auto& p : points) {
    const double r = std::log(p.loss) - std::log(fit.predict(p.arm, p.parameters, p.tokens));
    ss += r * r;
  }
  fit.rms_log_residual = std::sqrt(ss / double(points.size()));
  return fit;
}

ScalingAnalysis analyse_scaling(std::span<const LossPoint> points, std::size_t arms,
                                std::size_t reference_arm, bool use_tokens, double confidence) {
  DIFFTX_CHECK(reference_arm < arms, "reference arm {} of {} arms", reference_arm, arms);
  ScalingAnalysis out;
  out.fit = fit_power_law(points, arms, use_tokens);
  std::set<std::size_t> groups;
  for (const auto& p : points) groups.insert(p.group);
  out.groups.assign(groups.begin(), groups.end());
  for (std::size_t g : out.groups) {
    std::vector<LossPoint> mine;
    for (const auto& p : points) {
      if (p.group == g) mine.push_back(p);
    }
    out.group_fits.push_back(fit_power_law(mine, arms, out.fit.uses_tokens));
  }
  for (std::size_t a = 0; a < arms; ++a) {
    if (a == reference_arm) continue;
    EqualLossRatio r;
    r.arm = a;
    const auto gap = [&](const PowerLawFit& f) {
      return f.intercept[a] - f.intercept[reference_arm];
    };
    r.parameter_ratio = ratio_of(gap(out.fit), out.fit.alpha);
    r.token_ratio = out.fit.uses_tokens ? ratio_of(gap(out.fit), out.fit.beta) : kNaN;
    std::vector<double> log_p, log_t;
    for (const PowerLawFit& f : out.group_fits) {
      const double rp = ratio_of(gap(f), f.alpha);
      const double rt = f.uses_tokens ? ratio_of(gap(f), f.beta) : kNaN;
      r.parameter_ratio_by_group.push_back(rp);
      r.token_ratio_by_group.push_back(rt);
      if (std::isfinite(rp)) log_p.push_back(std::log(rp));
      if (std::isfinite(rt)) log_t.push_back(std::log(rt));
    }
    const auto interval = [&](const std::vector<double>& logs, std::size_t wanted, double& lo,
                              double& hi) {
      if (logs.size() < 2 || logs.size() != wanted) {
        lo = hi = kNaN;
        return;
      }
      const PairedDifference m = mean_interval(logs, confidence);
      lo = std::exp(m.ci_low);
      hi = std::exp(m.ci_high);
    };
    interval(log_p, out.group_fits.size(), r.parameter_ci_low, r.parameter_ci_high);
    interval(log_t, out.fit.uses_tokens ? out.group_fits.size() : 0, r.token_ci_low,
             r.token_ci_high);
    if (!(out.fit.alpha > 0)) {
      r.note = "loss does not fall with parameters in this fit (alpha <= 0): no parameter ratio";
    } else if (log_p.size() != out.group_fits.size()) {
      r.note = "some seeds' fits have alpha <= 0: no interval for the parameter ratio";
    } else if (out.fit.uses_tokens && !(out.fit.beta > 0)) {
      r.note = "loss does not fall with tokens in this fit (beta <= 0): no token ratio";
    }
    out.ratios.push_back(std::move(r));
  }
  return out;
}

}  // namespace difftx::study
