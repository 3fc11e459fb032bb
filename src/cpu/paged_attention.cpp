// CPU paged decode attention (the oracle of the CUDA split-K kernel): one query token per
// sequence against the tokens its block table lists, softmax or DIFF V1, in double.
#include <cmath>
#include <vector>

#include "cpu_ops.h"

namespace difftx::cpu {
namespace {

// Softmax of one query component against key component `kc` of the sequence's n tokens, whose
// pool rows are `rows`; probabilities into p.
template <typename T>
void softmax_scores(const PagedAttentionGeometry& g, const T* q, const T* k_pool,
                    const std::vector<i64>& rows, int kc, std::vector<double>& p) {
  const i64 k_width = i64(g.k_heads) * g.head_dim;
  double mx = -INFINITY;
  for (std::size_t s = 0; s < rows.size(); ++s) {
    p[s] = g.scale * dot(q, k_pool + rows[s] * k_width + i64(kc) * g.head_dim, g.head_dim);
    mx = std::max(mx, p[s]);
  }
  double sum = 0;
  for (std::size_t s = 0; s < rows.size(); ++s) sum += (p[s] = exp_in<T>(p[s] - mx));
  for (std::size_t s = 0; s < rows.size(); ++s) p[s] /= sum;
}

}  // namespace

template <typename T>
void paged_attention_decode(const PagedAttentionGeometry& g, const T* q, const T* k_pool,
                            const T* v_pool, const std::int32_t* block_tables,
                            const std::int32_t* context_lens, double lambda, T* out) {
  const bool diff = g.kind == PagedAttentionKind::diff;
  const int out_heads = g.out_heads(), dv = g.v_head_dim;
  const i64 v_width = i64(g.v_heads) * dv;
#pragma omp parallel for if (g.batch > 1)
  for (int b = 0; b < g.batch; ++b) {
    const int n = context_lens[b];
    std::vector<i64> rows(static_cast<std::size_t>(n));
    for (int t = 0; t < n; ++t) {
      const i64 block = block_tables[i64(b) * g.max_blocks + t / g.block_size];
      rows[t] = block * g.block_size + t % g.block_size;
    }
    std::vector<double> p1(rows.size()), p2(rows.size()), acc(static_cast<std::size_t>(dv));
    const T* qb = q + i64(b) * g.q_row_stride;
    for (int o = 0; o < out_heads; ++o) {
      T* dst = out + (i64(b) * out_heads + o) * dv;
      std::fill(acc.begin(), acc.end(), 0.0);
      if (n > 0) {
        const int rows_per_kv = g.group_rows();
        if (diff) {
          const int j = 2 * o / rows_per_kv;  // value head of head o
          softmax_scores(g, qb + i64(2 * o) * g.head_dim, k_pool, rows, 2 * j, p1);
          softmax_scores(g, qb + i64(2 * o + 1) * g.head_dim, k_pool, rows, 2 * j + 1, p2);
          for (int s = 0; s < n; ++s) {
            const T* vs = v_pool + rows[s] * v_width + i64(j) * dv;
            const double w = p1[s] - lambda * p2[s];
            for (int c = 0; c < dv; ++c) acc[c] += w * double(vs[c]);
          }
        } else {
          const int j = o / rows_per_kv;
          softmax_scores(g, qb + i64(o) * g.head_dim, k_pool, rows, j, p1);
          for (int s = 0; s < n; ++s) {
            const T* vs = v_pool + rows[s] * v_width + i64(j) * dv;
            for (int c = 0; c < dv; ++c) acc[c] += p1[s] * double(vs[c]);
          }
        }
      }
      for (int c = 0; c < dv; ++c) dst[c] = T(acc[c]);
    }
  }
}

template void paged_attention_decode<float>(const PagedAttentionGeometry&, const float*,
                                            const float*, const float*, const std::int32_t*,
                                            const std::int32_t*, double, float*);
template void paged_attention_decode<double>(const PagedAttentionGeometry&, const double*,
                                             const double*, const double*, const std::int32_t*,
                                             const std::int32_t*, double, double*);

}  // namespace difftx::cpu
