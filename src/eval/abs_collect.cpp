// Device-side |x| reduction into an AbsSummary (abs_collect.h).
#include "difftx/eval/abs_collect.h"

#include <algorithm>

#include "difftx/model/attention_probe.h"

namespace difftx::eval {

AbsCollector::AbsCollector(Backend& backend, std::int64_t capacity)
    : backend_(backend),
      counts_(Tensor::empty({kAbsHistogramBins}, DType::f64, backend.device())),
      candidates_(Tensor::empty({capacity}, DType::f32, backend.device())) {}

void AbsCollector::add(const Tensor& x, const AttentionGeometry* scores, AbsSummary& into) {
  backend_.abs_histogram(x, scores, counts_);
  const std::vector<double> counts = counts_.to(Device::cpu).to_double_vector();
  const double threshold = selection_threshold(counts, AbsSummary::kTop, into.threshold());
  const std::int64_t found = backend_.abs_select_at_least(x, scores, threshold, candidates_);
  const std::int64_t cap = candidates_.numel();
  std::vector<float> values;
  if (found <= cap) {
    if (found > 0) values = candidates_.rows(0, found).to(Device::cpu).to_float_vector();
    into.add_histogram(counts);
    into.add_candidates(values);
    return;
  }
  // More ties at the threshold's bin than the buffer holds: the values above that bin are fewer
  // than kTop (see selection_threshold), take them exactly and the rest as the bin's midpoint.
  const int bin = abs_histogram_bin(float(threshold));
  const double upper = abs_histogram_bin_upper(bin);
  const std::int64_t exact = backend_.abs_select_at_least(x, scores, upper, candidates_);
  if (exact > 0)
    values = candidates_.rows(0, std::min(exact, cap)).to(Device::cpu).to_float_vector();
  into.add_histogram(counts);
  into.add_candidates(values);
  into.add_approximate(threshold, upper, found - exact);
}

}  // namespace difftx::eval
