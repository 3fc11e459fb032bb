// Statistics of evaluation results: mean and spread over repeats, and the |x| summary of the
// outlier measurements (top-k values exactly, the median from a histogram with a stated bound).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <vector>

namespace difftx::eval {

// Mean, sample standard deviation (n - 1; 0 for fewer than two values), min and max.
struct Spread {
  std::size_t n = 0;
  double mean = 0, std = 0, min = 0, max = 0;
  double range() const { return max - min; }  // best - worst
};
Spread spread(std::span<const double> values);

// |x| over many tensors: a histogram of every value (attention_probe.h's float32-bit bins) for
// the count and the median, and the largest kTop values kept exactly. Values reach it as whole
// histograms plus the values at or above threshold() (candidates for the top list), which is how
// a device reduces a tensor without copying it: histogram on the device, then only the few
// values that can still enter the top list.
class AbsSummary {
 public:
  static constexpr int kTop = 100;

  AbsSummary();

  // A histogram (kAbsHistogramBins counts) of the values of one tensor.
  void add_histogram(std::span<const double> counts);
  // |x| values of that tensor at or above threshold() as it was before add_histogram: every
  // such value must be given (or, see add_approximate, represented).
  void add_candidates(std::span<const float> values);
  // `count` values known only to lie in [lo, hi): recorded as the bin midpoint, and the summary
  // marks its top list approximate (with the bin's relative error bound).
  void add_approximate(double lo, double hi, std::int64_t count);
  // Convenience for host data: histogram and candidates of these values.
  void add_values(std::span<const double> values);
  void merge(const AbsSummary& other);

  // Smallest |x| that can still change the top list: its kTop-th value once full, else 0.
  double threshold() const;
  std::uint64_t count() const { return count_; }
  // k-th largest value (k = 1 .. kTop); NaN if fewer values were seen.
  double top(int k) const;
  // The value of rank floor((n - 1) / 2) in ascending order (the lower median), as the midpoint
  // of its histogram bin: within 2^-8 relative of the exact value. NaN if empty.
  double median() const;
  bool approximate_top() const { return approximate_top_; }
  const std::vector<double>& histogram() const { return hist_; }

  // {"count", "top1", "top2", "top3", "top10", "top100", "median", "top1_over_median",
  //  "median_relative_error_bound", "top_exact"}; values unknown are null.
  nlohmann::json to_json() const;

 private:
  std::vector<double> hist_;  // kAbsHistogramBins counts
  std::vector<double> top_;   // descending, at most kTop
  std::uint64_t count_ = 0;
  bool approximate_top_ = false;
};

// For one tensor's histogram and the summary's current threshold: the smallest threshold that
// still keeps every value that can enter a kTop list, i.e. max(current, the lower edge of the
// highest bin b such that the bins from b up hold at least `top` values).
double selection_threshold(std::span<const double> tensor_counts, int top, double current);

}  // namespace difftx::eval
