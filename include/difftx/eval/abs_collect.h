// Adds a device tensor's |x| to an AbsSummary without copying the tensor: the backend builds its
// histogram (copied back: kAbsHistogramBins counts) and then selects only the values that can
// still enter the summary's top list (a threshold from that histogram and the list), so the
// host receives a few kilobytes per tensor whatever its size.
#pragma once

#include "difftx/eval/stats.h"
#include "difftx/model/backend.h"

namespace difftx::eval {

class AbsCollector {
 public:
  // `capacity`: candidates copied back per tensor at most (values tied within one histogram
  // bin beyond that are summarised by the bin's midpoint; the summary then says so).
  explicit AbsCollector(Backend& backend, std::int64_t capacity = std::int64_t(1) << 20);

  // All elements of x, or (scores set) the visible entries of a (B, Hs, T, S) scores tensor.
  void add(const Tensor& x, const AttentionGeometry* scores, AbsSummary& into);

 private:
  Backend& backend_;
  Tensor counts_;      // (kAbsHistogramBins) f64 on the device
  Tensor candidates_;  // (capacity) f32 on the device
};

}  // namespace difftx::eval
