// CPU materialized attention for the evaluation probes: explicit score maps, absmax logit
// quantization, row softmax and probs x V with the DIFF V1 / V2 combinations (attention_probe.h).
#include <algorithm>
#include <cmath>
#include <vector>

#include "attention_indexing.h"
#include "probe_ops.h"

namespace difftx::cpu {
namespace {

// Offset of row (b, m, t) of a (B, Hs, T, S) scores tensor.
i64 score_row(const AttentionGeometry& g, int b, int m, int t) {
  return ((i64(b) * g.q_heads + m) * g.q_len + t) * g.kv_len;
}

}  // namespace

template <typename T>
void attention_scores(const AttentionGeometry& g, ProbeCombine c, const T* q, const T* k,
                      T* scores) {
  AttentionIndex ix{g};
#pragma omp parallel for collapse(2)
  for (int b = 0; b < g.batch; ++b) {
    for (int m = 0; m < g.q_heads; ++m) {
      const int kc = probe_key_component(g, c, m);
      for (int t = 0; t < g.q_len; ++t) {
        T* row = scores + score_row(g, b, m, t);
        const int n = probe_visible(g, t);
        const T* qt = q + ix.q(b, t, m);
        for (int s = 0; s < n; ++s) row[s] = T(g.scale * dot(qt, k + ix.k(b, s, kc), g.head_dim));
        std::fill(row + n, row + g.kv_len, T(0));
      }
    }
  }
}

template <typename T>
void attention_logits_quantize(const AttentionGeometry& g, int bits, bool per_head, T* scores) {
  const double levels = std::ldexp(1.0, bits - 1) - 1.0;  // Q
  const int groups_per_row = per_head ? g.q_heads : 1;
  const int maps_per_group = per_head ? 1 : g.q_heads;
#pragma omp parallel for collapse(2)
  for (int b = 0; b < g.batch; ++b) {
    for (int grp = 0; grp < groups_per_row; ++grp) {
      double absmax = 0;
      for (int m = grp * maps_per_group; m < (grp + 1) * maps_per_group; ++m) {
        for (int t = 0; t < g.q_len; ++t) {
          const T* row = scores + score_row(g, b, m, t);
          const int n = probe_visible(g, t);
          for (int s = 0; s < n; ++s) absmax = std::max(absmax, std::abs(double(row[s])));
        }
      }
      if (absmax == 0) continue;
      const double step = absmax / levels;
      for (int m = grp * maps_per_group; m < (grp + 1) * maps_per_group; ++m) {
        for (int t = 0; t < g.q_len; ++t) {
          T* row = scores + score_row(g, b, m, t);
          const int n = probe_visible(g, t);
          for (int s = 0; s < n; ++s) {
            const double level = std::clamp(std::round(double(row[s]) / step), -levels, levels);
            row[s] = T(level * step);
          }
        }
      }
    }
  }
}

template <typename T>
void attention_softmax(const AttentionGeometry& g, const T* scores, T* probs) {
  const i64 rows = i64(g.batch) * g.q_heads * g.q_len;
#pragma omp parallel for
  for (i64 r = 0; r < rows; ++r) {
    const int t = int(r % g.q_len);
    const int n = probe_visible(g, t);
    const T* x = scores + r * g.kv_len;
    T* p = probs + r * g.kv_len;
    double mx = -INFINITY;
    for (int s = 0; s < n; ++s) mx = std::max(mx, double(x[s]));
    double sum = 0;
    std::vector<double> e(static_cast<std::size_t>(n));
    for (int s = 0; s < n; ++s) sum += (e[std::size_t(s)] = exp_in<T>(double(x[s]) - mx));
    for (int s = 0; s < n; ++s) p[s] = T(e[std::size_t(s)] / sum);
    std::fill(p + n, p + g.kv_len, T(0));
  }
}

template <typename T>
void attention_probs_value(const AttentionGeometry& g, ProbeCombine c, const T* probs, const T* v,
                           double lambda, const T* gate, T* out) {
  AttentionIndex ix{g};
  const int heads = probe_out_heads(g, c);
#pragma omp parallel for collapse(2)
  for (int b = 0; b < g.batch; ++b) {
    for (int i = 0; i < heads; ++i) {
      const int vh = probe_value_head(g, c, i);
      const int ma = c == ProbeCombine::softmax ? i : 2 * i;  // first (or only) map
      std::vector<double> w(static_cast<std::size_t>(g.kv_len)), acc(std::size_t(g.v_head_dim));
      for (int t = 0; t < g.q_len; ++t) {
        const int n = probe_visible(g, t);
        const T* pa = probs + score_row(g, b, ma, t);
        // weight of the second map: lambda (V1), sigmoid(gate) of this token and head (V2)
        double coef = 0;
        if (c == ProbeCombine::diff_v1) coef = lambda;
        if (c == ProbeCombine::diff_v2) {
          coef = 1.0 / (1.0 + std::exp(-double(gate[(i64(b) * g.q_len + t) * heads + i])));
        }
        const T* pb = c == ProbeCombine::softmax ? nullptr : probs + score_row(g, b, ma + 1, t);
        for (int s = 0; s < n; ++s) {
          w[std::size_t(s)] = double(pa[s]) - (pb ? coef * double(pb[s]) : 0.0);
        }
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int s = 0; s < n; ++s) {
          const T* vs = v + ix.v(b, s, vh);
          const double ws = w[std::size_t(s)];
          for (int d = 0; d < g.v_head_dim; ++d) acc[std::size_t(d)] += ws * double(vs[d]);
        }
        T* o = out + ix.out(b, t, i, heads);
        for (int d = 0; d < g.v_head_dim; ++d) o[d] = T(acc[std::size_t(d)]);
      }
    }
  }
}

template void attention_scores<float>(const AttentionGeometry&, ProbeCombine, const float*,
                                      const float*, float*);
template void attention_scores<double>(const AttentionGeometry&, ProbeCombine, const double*,
                                       const double*, double*);
template void attention_logits_quantize<float>(const AttentionGeometry&, int, bool, float*);
template void attention_logits_quantize<double>(const AttentionGeometry&, int, bool, double*);
template void attention_softmax<float>(const AttentionGeometry&, const float*, float*);
template void attention_softmax<double>(const AttentionGeometry&, const double*, double*);
template void attention_probs_value<float>(const AttentionGeometry&, ProbeCombine, const float*,
                                           const float*, double, const float*, float*);
template void attention_probs_value<double>(const AttentionGeometry&, ProbeCombine, const double*,
                                            const double*, double, const double*, double*);

}  // namespace difftx::cpu
