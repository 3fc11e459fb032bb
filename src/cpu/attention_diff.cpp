// CPU differential attention (DIFF V1), forward and backward, written straight from the spec:
// head i pairs query components (2i, 2i+1) with key components (2j, 2j+1), j = i / n_rep, and
// reads the 2d-wide value head j; out = (A1 - lambda A2) V, out2 = A2 V.
#include <cmath>
#include <vector>

#include "attention_indexing.h"

namespace difftx::cpu {
namespace {

// Softmax probabilities of one query row against keys [0, n) of key component `kc`.
template <typename T>
double softmax_row(const AttentionIndex& ix, const T* q, const T* k, int b, int t, int qc, int kc,
                   int n, std::vector<double>& p) {
  double mx = -INFINITY;
  for (int s = 0; s < n; ++s) {
    p[s] = ix.g.scale * dot(q + ix.q(b, t, qc), k + ix.k(b, s, kc), ix.g.head_dim);
    mx = std::max(mx, p[s]);
  }
  double sum = 0;
  for (int s = 0; s < n; ++s) sum += (p[s] = exp_in<T>(p[s] - mx));
  for (int s = 0; s < n; ++s) p[s] /= sum;
  return mx + std::log(sum);
}

}  // namespace

template <typename T>
void diff_attention_forward(const AttentionGeometry& g, const T* q, const T* k, const T* v,
                            T lambda, T* out, T* out2, T* lse) {
  AttentionIndex ix{g};
  const int h = g.q_heads / 2;
  const int n_rep = h / g.v_heads;
  const double lam = double(lambda);
#pragma omp parallel for collapse(2)
  for (int b = 0; b < g.batch; ++b) {
    for (int i = 0; i < h; ++i) {
      const int j = i / n_rep;
      std::vector<double> p1(static_cast<std::size_t>(g.kv_len)), p2(p1.size());
      std::vector<double> a1(static_cast<std::size_t>(g.v_head_dim)), a2(a1.size());
      for (int t = 0; t < g.q_len; ++t) {
        const int n = ix.visible(t);
        lse[ix.stat(b, 2 * i, t, 2 * h)] = T(softmax_row(ix, q, k, b, t, 2 * i, 2 * j, n, p1));
        lse[ix.stat(b, 2 * i + 1, t, 2 * h)] =
            T(softmax_row(ix, q, k, b, t, 2 * i + 1, 2 * j + 1, n, p2));
        std::fill(a1.begin(), a1.end(), 0.0);
        std::fill(a2.begin(), a2.end(), 0.0);
        for (int s = 0; s < n; ++s) {
          const T* vs = v + ix.v(b, s, j);
          for (int c = 0; c < g.v_head_dim; ++c) {
            a1[c] += p1[s] * double(vs[c]);
            a2[c] += p2[s] * double(vs[c]);
          }
        }
        T* o = out + ix.out(b, t, i, h);
        T* o2 = out2 ? out2 + ix.out(b, t, i, h) : nullptr;
        for (int c = 0; c < g.v_head_dim; ++c) {
          o[c] = T(a1[c] - lam * a2[c]);
          if (o2) o2[c] = T(a2[c]);
        }
      }
    }
  }
}

template <typename T>
void diff_attention_backward(const AttentionGeometry& g, const T* q, const T* k, const T* v,
                             T lambda, const T* out, const T* out2, const T* lse, const T* dout,
                             T* dq, T* dk, T* dv, T* dlambda) {
  AttentionIndex ix{g};
  const int h = g.q_heads / 2;
  const int n_rep = h / g.v_heads;
  const double lam = double(lambda);
  // Per-task partial sums of dlambda, added in a fixed order so results are bit-reproducible.
  std::vector<double> dlam_parts(static_cast<std::size_t>(g.batch) * g.v_heads, 0.0);
  // One task per (batch, kv group j): owns dk/dv of group j and dq of heads i with i/n_rep == j.
#pragma omp parallel for collapse(2)
  for (int b = 0; b < g.batch; ++b) {
    for (int j = 0; j < g.v_heads; ++j) {
      double& dlam_total = dlam_parts[static_cast<std::size_t>(b) * g.v_heads + j];
      for (int s = 0; s < g.kv_len; ++s) {
        std::fill_n(dk + ix.k(b, s, 2 * j), 2 * g.head_dim, T(0));
        std::fill_n(dv + ix.v(b, s, j), g.v_head_dim, T(0));
      }
      std::vector<double> dq1(static_cast<std::size_t>(g.head_dim)), dq2(dq1.size());
      for (int i = j * n_rep; i < (j + 1) * n_rep; ++i) {
        for (int t = 0; t < g.q_len; ++t) {
          const int n = ix.visible(t);
          const T* go = dout + ix.out(b, t, i, h);
          const T* o = out + ix.out(b, t, i, h);
          const T* o2 = out2 + ix.out(b, t, i, h);
          // D_m = rowsum(dO_m . O_m) with dO_1 = dO, dO_2 = -lambda dO, O1 = out + lambda out2.
          double d1 = 0, d2 = 0, dl = 0;
          for (int c = 0; c < g.v_head_dim; ++c) {
            double o1 = double(o[c]) + lam * double(o2[c]);
            d1 += double(go[c]) * o1;
            d2 += -lam * double(go[c]) * double(o2[c]);
            dl += double(go[c]) * double(o2[c]);
          }
          dlam_total -= dl;
          const T* q1 = q + ix.q(b, t, 2 * i);
          const T* q2 = q + ix.q(b, t, 2 * i + 1);
          const double l1 = double(lse[ix.stat(b, 2 * i, t, 2 * h)]);
          const double l2 = double(lse[ix.stat(b, 2 * i + 1, t, 2 * h)]);
          std::fill(dq1.begin(), dq1.end(), 0.0);
          std::fill(dq2.begin(), dq2.end(), 0.0);
          for (int s = 0; s < n; ++s) {
            const T* k1 = k + ix.k(b, s, 2 * j);
            const T* k2 = k + ix.k(b, s, 2 * j + 1);
            const T* vs = v + ix.v(b, s, j);
            double p1 = exp_in<T>(g.scale * dot(q1, k1, g.head_dim) - l1);
            double p2 = exp_in<T>(g.scale * dot(q2, k2, g.head_dim) - l2);
            double dpv = dot(go, vs, g.v_head_dim);  // dO . V_s
            double ds1 = p1 * (dpv - d1) * g.scale;
            double ds2 = p2 * (-lam * dpv - d2) * g.scale;
            T* dk1 = dk + ix.k(b, s, 2 * j);
            T* dk2 = dk + ix.k(b, s, 2 * j + 1);
            for (int c = 0; c < g.head_dim; ++c) {
              dq1[c] += ds1 * double(k1[c]);
              dq2[c] += ds2 * double(k2[c]);
              dk1[c] += T(ds1 * double(q1[c]));
              dk2[c] += T(ds2 * double(q2[c]));
            }
            T* dvs = dv + ix.v(b, s, j);
            const double w = p1 - lam * p2;
            for (int c = 0; c < g.v_head_dim; ++c) dvs[c] += T(w * double(go[c]));
          }
          T* dq1t = dq + ix.q(b, t, 2 * i);
          T* dq2t = dq + ix.q(b, t, 2 * i + 1);
          for (int c = 0; c < g.head_dim; ++c) {
            dq1t[c] = T(dq1[c]);
            dq2t[c] = T(dq2[c]);
          }
        }
      }
    }
  }
  double dlam_total = 0;
  for (double part : dlam_parts) dlam_total += part;
  *dlambda += T(dlam_total);
}

template void diff_attention_forward<float>(const AttentionGeometry&, const float*, const float*,
                                            const float*, float, float*, float*, float*);
template void diff_attention_forward<double>(const AttentionGeometry&, const double*, const double*,
                                             const double*, double, double*, double*, double*);
template void diff_attention_backward<float>(const AttentionGeometry&, const float*, const float*,
                                             const float*, float, const float*, const float*,
                                             const float*, const float*, float*, float*, float*,
                                             float*);
template void diff_attention_backward<double>(const AttentionGeometry&, const double*,
                                              const double*, const double*, double, const double*,
                                              const double*, const double*, const double*, double*,
                                              double*, double*, double*);

}  // namespace difftx::cpu
