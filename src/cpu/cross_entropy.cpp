// CPU cross-entropy fused with the softmax: per-row loss and dlogits = (p - onehot) * scale.
#include <cmath>

#include "cpu_ops.h"
#include "difftx/core/error.h"

namespace difftx::cpu {

template <typename T>
void cross_entropy(const T* logits, const std::int32_t* targets, i64 n, i64 vocab,
                   double grad_scale, T* losses, T* dlogits) {
  for (i64 r = 0; r < n; ++r) {
    DIFFTX_CHECK(targets[r] < vocab, "target id {} at row {} is outside the vocabulary [0, {})",
                 targets[r], r, vocab);
  }
#pragma omp parallel for if (n * vocab > 65536)
  for (i64 r = 0; r < n; ++r) {
    const T* row = logits + r * vocab;
    const std::int32_t target = targets[r];
    double mx = -INFINITY;
    for (i64 c = 0; c < vocab; ++c) mx = std::max(mx, double(row[c]));
    double sum = 0;
    for (i64 c = 0; c < vocab; ++c) sum += exp_in<T>(double(row[c]) - mx);
    const double lse = mx + std::log(sum);
    const bool ignored = target < 0;
    const double target_logit = ignored ? 0.0 : double(row[target]);
    losses[r] = ignored ? T(0) : T(lse - target_logit);
    if (dlogits) {
      T* drow = dlogits + r * vocab;  // may alias row: each element is read before written
      for (i64 c = 0; c < vocab; ++c) {
        double p = exp_in<T>(double(row[c]) - lse);
        double onehot = (c == target) ? 1.0 : 0.0;
        drow[c] = ignored ? T(0) : T((p - onehot) * grad_scale);
      }
    }
  }
}

template void cross_entropy<float>(const float*, const std::int32_t*, i64, i64, double, float*,
                                   float*);
template void cross_entropy<double>(const double*, const std::int32_t*, i64, i64, double, double*,
                                    double*);

}  // namespace difftx::cpu
