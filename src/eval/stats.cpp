// Spread over repeats and the |x| summary (histogram median, exact top list).
#include "difftx/eval/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "difftx/core/error.h"
#include "difftx/model/attention_probe.h"

namespace difftx::eval {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

nlohmann::json number_or_null(double x) {
  return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr);
}

}  // namespace

Spread spread(std::span<const double> values) {
  Spread s;
  s.n = values.size();
  if (values.empty()) return s;
  s.min = *std::min_element(values.begin(), values.end());
  s.max = *std::max_element(values.begin(), values.end());
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / double(s.n);
  if (s.n >= 2) {
    double ss = 0;
    for (double v : values) ss += (v - s.mean) * (v - s.mean);
    s.std = std::sqrt(ss / double(s.n - 1));
  }
  return s;
}

AbsSummary::AbsSummary() : hist_(kAbsHistogramBins, 0.0) {}

void AbsSummary::add_histogram(std::span<const double> counts) {
  DIFFTX_CHECK(counts.size() == hist_.size(), "abs summary: histogram of {} bins, expected {}",
               counts.size(), hist_.size());
  for (std::size_t b = 0; b < hist_.size(); ++b) {
    hist_[b] += counts[b];
    count_ += std::uint64_t(counts[b]);
  }
}

void AbsSummary::add_candidates(std::span<const float> values) {
  top_.insert(top_.end(), values.begin(), values.end());
  std::sort(top_.begin(), top_.end(), std::greater<double>());
  if (top_.size() > std::size_t(kTop)) top_.resize(std::size_t(kTop));
}

void AbsSummary::add_approximate(double lo, double hi, std::int64_t count) {
  const double mid = 0.5 * (lo + hi);
  const std::int64_t n = std::min<std::int64_t>(count, kTop);
  top_.insert(top_.end(), std::size_t(n), mid);
  std::sort(top_.begin(), top_.end(), std::greater<double>());
  if (top_.size() > std::size_t(kTop)) top_.resize(std::size_t(kTop));
  approximate_top_ = true;
}

void AbsSummary::add_values(std::span<const double> values) {
  std::vector<double> counts(hist_.size(), 0.0);
  std::vector<float> candidates;
  const double t = threshold();
  for (double v : values) {
    const float a = std::abs(float(v));
    counts[std::size_t(abs_histogram_bin(a))] += 1;
    if (double(a) >= t) candidates.push_back(a);
  }
  add_histogram(counts);
  add_candidates(candidates);
}

void AbsSummary::merge(const AbsSummary& other) {
  add_histogram(other.hist_);
  std::vector<float> values(other.top_.begin(), other.top_.end());
  add_candidates(values);
  approximate_top_ = approximate_top_ || other.approximate_top_;
}

double AbsSummary::threshold() const {
  return top_.size() >= std::size_t(kTop) ? top_.back() : 0.0;
}

double AbsSummary::top(int k) const {
  if (k < 1 || std::size_t(k) > top_.size()) return kNaN;
  return top_[std::size_t(k - 1)];
}

double AbsSummary::median() const {
  if (count_ == 0) return kNaN;
  const double rank = double((count_ - 1) / 2);  // 0-based, ascending
  double seen = 0;
  for (int b = 0; b < kAbsHistogramBins; ++b) {
    seen += hist_[std::size_t(b)];
    if (seen > rank) {
      const double lo = abs_histogram_bin_lower(b), hi = abs_histogram_bin_upper(b);
      return std::isfinite(hi) ? 0.5 * (lo + hi) : lo;
    }
  }
  return kNaN;
}

nlohmann::json AbsSummary::to_json() const {
  const double med = median();
  nlohmann::json j;
  j["count"] = count_;
  for (int k : {1, 2, 3, 10, 100}) j["top" + std::to_string(k)] = number_or_null(top(k));
  j["median"] = number_or_null(med);
  j["top1_over_median"] = number_or_null(med > 0 ? top(1) / med : kNaN);
  j["median_relative_error_bound"] = 1.0 / 256.0;
  j["top_exact"] = !approximate_top_;
  return j;
}

double selection_threshold(std::span<const double> tensor_counts, int top, double current) {
  double above = 0;
  for (int b = int(tensor_counts.size()) - 1; b >= 0; --b) {
    above += tensor_counts[std::size_t(b)];
    if (above >= top) return std::max(current, double(abs_histogram_bin_lower(b)));
  }
  return current;  // fewer than `top` values in the tensor: all are candidates above `current`
}

}  // namespace difftx::eval
