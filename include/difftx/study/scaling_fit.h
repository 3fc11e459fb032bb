// The language-model study's scaling fit: loss against parameters N and training tokens D,
//   log L = c_arm - alpha * log N - beta * log D,
// one intercept per arm, exponents shared (least squares on log loss), so each arm's curve is
// the baseline's shifted by a constant factor in N (or in D). At equal loss, an arm needs
//   N_arm / N_ref = exp((c_arm - c_ref) / alpha)   parameters,   D_arm / D_ref = exp((c_arm -
//   c_ref) / beta)
// tokens of the reference arm's: the paper's "about 65% of model size or training tokens".
//
// Uncertainty: points of one seed are not independent (a learning curve is one run), so the
// interval comes from replicates: the fit is repeated on each seed's points alone, and the
// per-seed log ratios give a t interval (n_seeds - 1 degrees of freedom), exponentiated.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace difftx::study {

struct LossPoint {
  std::size_t arm = 0;    // index of the arm (0 .. arms - 1)
  std::size_t group = 0;  // replicate (seed) the point belongs to
  double parameters = 0;  // N
  double tokens = 0;      // D
  double loss = 0;        // nats, > 0
};

struct PowerLawFit {
  std::vector<double> intercept;  // c_arm
  double alpha = 0;               // exponent of N
  double beta = 0;                // exponent of D (0 when tokens are not fitted)
  bool uses_tokens = false;
  std::size_t points = 0;
  double rms_log_residual = 0;  // root mean square of log L - fit

  double predict(std::size_t arm, double parameters, double tokens) const;  // loss, nats
};

// Least squares over the points. With use_tokens and at least two distinct token counts the D
// term is fitted; otherwise it is left out (uses_tokens false). Throws a difftx::Error naming
// the problem when the points cannot determine the fit (fewer than two parameter counts, an arm
// without points, non-positive values).
PowerLawFit fit_power_law(std::span<const LossPoint> points, std::size_t arms, bool use_tokens);

struct EqualLossRatio {
  std::size_t arm = 0;
  double parameter_ratio = 0;  // from the fit on every point; NaN when alpha <= 0
  double token_ratio = 0;      // NaN without the D term or when beta <= 0
  // From the per-seed fits: each seed's ratio, and the t interval of the log ratios.
  std::vector<double> parameter_ratio_by_group, token_ratio_by_group;
  double parameter_ci_low = 0, parameter_ci_high = 0;  // NaN with fewer than two seeds
  double token_ci_low = 0, token_ci_high = 0;
  std::string note;  // why a ratio is undefined, if one is
};

struct ScalingAnalysis {
  PowerLawFit fit;                      // all points
  std::vector<PowerLawFit> group_fits;  // one per group, in group order
  std::vector<std::size_t> groups;      // the group ids, ascending
  std::vector<EqualLossRatio> ratios;   // every arm except the reference
};

// Fits all points, then each group's; ratios of every arm against `reference_arm`.
ScalingAnalysis analyse_scaling(std::span<const LossPoint> points, std::size_t arms,
                                std::size_t reference_arm, bool use_tokens,
                                double confidence = 0.95);

}  // namespace difftx::study
