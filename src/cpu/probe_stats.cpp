// CPU statistics kernels of the evaluation probes: |x| histogram over float32 bit patterns,
// selection of the elements with |x| above a threshold, and the per-row KL divergence of two
// logit tensors.
#include <algorithm>
#include <cmath>
#include <vector>

#include "probe_ops.h"

namespace difftx::cpu {
namespace {

// Calls fn(begin, end) for every run of counted elements: all n, or the visible prefix of each
// (B, Hs, T, S) score row.
template <typename Fn>
void for_each_counted_run(i64 n, const AttentionGeometry* g, Fn&& fn) {
  if (!g) {
    fn(i64(0), n);
    return;
  }
  const i64 rows = n / g->kv_len;
  for (i64 r = 0; r < rows; ++r) {
    const int t = int(r % g->q_len);
    fn(r * g->kv_len, r * g->kv_len + probe_visible(*g, t));
  }
}

}  // namespace

template <typename X>
void abs_histogram(const X* x, i64 n, const AttentionGeometry* scores, double* counts) {
  std::vector<std::uint64_t> hist(kAbsHistogramBins, 0);
  for_each_counted_run(n, scores, [&](i64 begin, i64 end) {
    for (i64 i = begin; i < end; ++i) ++hist[std::size_t(abs_histogram_bin(float(x[i])))];
  });
  for (int b = 0; b < kAbsHistogramBins; ++b) counts[b] = double(hist[std::size_t(b)]);
}

template <typename X>
i64 abs_select_at_least(const X* x, i64 n, const AttentionGeometry* scores, double threshold,
                        float* out, i64 capacity) {
  i64 count = 0;
  for_each_counted_run(n, scores, [&](i64 begin, i64 end) {
    for (i64 i = begin; i < end; ++i) {
      const float a = std::abs(float(x[i]));
      if (double(a) >= threshold) {
        if (count < capacity) out[count] = a;
        ++count;
      }
    }
  });
  return count;
}

template <typename T>
void kl_divergence_rows(const T* ref, const T* x, i64 n, i64 vocab, T* out) {
#pragma omp parallel for
  for (i64 r = 0; r < n; ++r) {
    const T* a = ref + r * vocab;
    const T* b = x + r * vocab;
    double ma = -INFINITY, mb = -INFINITY;
    for (i64 v = 0; v < vocab; ++v) {
      ma = std::max(ma, double(a[v]));
      mb = std::max(mb, double(b[v]));
    }
    double sa = 0, sb = 0;
    for (i64 v = 0; v < vocab; ++v) {
      sa += std::exp(double(a[v]) - ma);
      sb += std::exp(double(b[v]) - mb);
    }
    const double la = ma + std::log(sa), lb = mb + std::log(sb);  // log-sum-exps
    double kl = 0;
    for (i64 v = 0; v < vocab; ++v) {
      const double lpa = double(a[v]) - la, lpb = double(b[v]) - lb;
      kl += std::exp(lpa) * (lpa - lpb);
    }
    out[r] = T(std::max(kl, 0.0));
  }
}

template void abs_histogram<float>(const float*, i64, const AttentionGeometry*, double*);
template void abs_histogram<double>(const double*, i64, const AttentionGeometry*, double*);
template i64 abs_select_at_least<float>(const float*, i64, const AttentionGeometry*, double, float*,
                                        i64);
template i64 abs_select_at_least<double>(const double*, i64, const AttentionGeometry*, double,
                                         float*, i64);
template void kl_divergence_rows<float>(const float*, const float*, i64, i64, float*);
template void kl_divergence_rows<double>(const double*, const double*, i64, i64, double*);

}  // namespace difftx::cpu
