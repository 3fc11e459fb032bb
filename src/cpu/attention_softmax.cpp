// CPU causal softmax attention with GQA (baseline and DIFF V2), forward and backward. Naive:
// scores are formed row by row and never stored; the backward recomputes them from the lse.
#include <cmath>
#include <vector>

#include "attention_indexing.h"

namespace difftx::cpu {

template <typename T>
void softmax_attention_forward(const AttentionGeometry& g, const T* q, const T* k, const T* v,
                               T* out, T* lse) {
  AttentionIndex ix{g};
  const int group = g.q_heads / g.v_heads;
#pragma omp parallel for collapse(2)
  for (int b = 0; b < g.batch; ++b) {
    for (int m = 0; m < g.q_heads; ++m) {
      const int kvh = m / group;
      std::vector<double> p(static_cast<std::size_t>(g.kv_len));
      std::vector<double> acc(static_cast<std::size_t>(g.v_head_dim));
      for (int t = 0; t < g.q_len; ++t) {
        const int n = ix.visible(t);
        double mx = -INFINITY;
        for (int s = 0; s < n; ++s) {
          p[s] = g.scale * dot(q + ix.q(b, t, m), k + ix.k(b, s, kvh), g.head_dim);
          mx = std::max(mx, p[s]);
        }
        double sum = 0;
        for (int s = 0; s < n; ++s) sum += (p[s] = exp_in<T>(p[s] - mx));
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int s = 0; s < n; ++s) {
          const T* vs = v + ix.v(b, s, kvh);
          for (int c = 0; c < g.v_head_dim; ++c) acc[c] += p[s] * double(vs[c]);
        }
        T* o = out + ix.out(b, t, m, g.q_heads);
        for (int c = 0; c < g.v_head_dim; ++c) o[c] = T(acc[c] / sum);
        lse[ix.stat(b, m, t, g.q_heads)] = T(mx + std::log(sum));
      }
    }
  }
}

template <typename T>
void softmax_attention_backward(const AttentionGeometry& g, const T* q, const T* k, const T* v,
                                const T* out, const T* lse, const T* dout, T* dq, T* dk, T* dv) {
  AttentionIndex ix{g};
  const int group = g.q_heads / g.v_heads;
  // One task per (batch, kv head): it owns dk/dv of that head and dq of its query heads.
#pragma omp parallel for collapse(2)
  for (int b = 0; b < g.batch; ++b) {
    for (int j = 0; j < g.v_heads; ++j) {
      for (int s = 0; s < g.kv_len; ++s) {
        std::fill_n(dk + ix.k(b, s, j), g.head_dim, T(0));
        std::fill_n(dv + ix.v(b, s, j), g.v_head_dim, T(0));
      }
      std::vector<double> p(static_cast<std::size_t>(g.kv_len));
      std::vector<double> dq_row(static_cast<std::size_t>(g.head_dim));
      for (int m = j * group; m < (j + 1) * group; ++m) {
        for (int t = 0; t < g.q_len; ++t) {
          const int n = ix.visible(t);
          const T* qt = q + ix.q(b, t, m);
          const T* go = dout + ix.out(b, t, m, g.q_heads);
          const double l = double(lse[ix.stat(b, m, t, g.q_heads)]);
          const double D = dot(go, out + ix.out(b, t, m, g.q_heads), g.v_head_dim);
          std::fill(dq_row.begin(), dq_row.end(), 0.0);
          for (int s = 0; s < n; ++s) {
            const T* ks = k + ix.k(b, s, j);
            const T* vs = v + ix.v(b, s, j);
            double ps = exp_in<T>(g.scale * dot(qt, ks, g.head_dim) - l);
            double dp = dot(go, vs, g.v_head_dim);
            double ds = ps * (dp - D) * g.scale;
            T* dks = dk + ix.k(b, s, j);
            T* dvs = dv + ix.v(b, s, j);
            for (int c = 0; c < g.head_dim; ++c) {
              dq_row[c] += ds * double(ks[c]);
              dks[c] += T(ds * double(qt[c]));
            }
            for (int c = 0; c < g.v_head_dim; ++c) dvs[c] += T(ps * double(go[c]));
          }
          T* dqt = dq + ix.q(b, t, m);
          for (int c = 0; c < g.head_dim; ++c) dqt[c] = T(dq_row[c]);
        }
      }
    }
  }
}

template void softmax_attention_forward<float>(const AttentionGeometry&, const float*, const float*,
                                               const float*, float*, float*);
template void softmax_attention_forward<double>(const AttentionGeometry&, const double*,
                                                const double*, const double*, double*, double*);
template void softmax_attention_backward<float>(const AttentionGeometry&, const float*,
                                                const float*, const float*, const float*,
                                                const float*, const float*, float*, float*, float*);
template void softmax_attention_backward<double>(const AttentionGeometry&, const double*,
                                                 const double*, const double*, const double*,
                                                 const double*, const double*, double*, double*,
                                                 double*);

}  // namespace difftx::cpu
