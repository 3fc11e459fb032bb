// The evaluation probes' ops on the CPU, each against an independent computation: the plain
// pipeline (scores -> softmax -> probs x V) reproduces the fused attention ops of every kind;
// absmax quantization matches a hand computation (levels, per tensor / per head groups, masked
// entries excluded); the |x| histogram and the threshold selection match direct counting; KL
// matches the formula.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "difftx/cpu/cpu_backend.h"

namespace difftx {
namespace {

Tensor random_tensor(Shape shape, std::mt19937_64& rng, double scale = 1.0) {
  Tensor t = Tensor::empty(std::move(shape), DType::f64);
  std::normal_distribution<double> d(0.0, scale);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = d(rng);
  return t;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto x = a.to_double_vector(), y = b.to_double_vector();
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (std::size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

struct Kind {
  ProbeCombine combine;
  int batch, seq, kv_len, offset, heads, kv_heads, d;
};

AttentionGeometry geometry_of(const Kind& k) {
  switch (k.combine) {
    case ProbeCombine::diff_v1:
      return packed_attention_geometry(k.batch, k.seq, k.kv_len, k.offset, 2 * k.heads,
                                       2 * k.kv_heads, k.kv_heads, k.d, 2 * k.d);
    case ProbeCombine::diff_v2:
      return packed_attention_geometry(k.batch, k.seq, k.kv_len, k.offset, 2 * k.heads, k.kv_heads,
                                       k.kv_heads, k.d, k.d);
    case ProbeCombine::softmax:
      return packed_attention_geometry(k.batch, k.seq, k.kv_len, k.offset, k.heads, k.kv_heads,
                                       k.kv_heads, k.d, k.d);
  }
  return {};
}

class PlainAttention : public ::testing::TestWithParam<Kind> {};

TEST_P(PlainAttention, ReproducesTheFusedOp) {
  const Kind k = GetParam();
  const AttentionGeometry g = geometry_of(k);
  auto b = make_cpu_backend(DType::f64);
  std::mt19937_64 rng(17);
  Tensor q = random_tensor({g.batch * g.q_len, g.q_heads * g.head_dim}, rng);
  Tensor kk = random_tensor({g.batch * g.kv_len, g.k_heads * g.head_dim}, rng);
  Tensor v = random_tensor({g.batch * g.kv_len, g.v_heads * g.v_head_dim}, rng);
  Tensor lambda = Tensor::from_vector({1}, {0.37f}, DType::f64);
  const int heads = probe_out_heads(g, k.combine);
  Tensor gate = random_tensor({g.batch * g.q_len, heads}, rng);
  Tensor scores = Tensor::empty({g.batch, g.q_heads, g.q_len, g.kv_len}, DType::f64);
  b->attention_scores(g, k.combine, q, kk, scores);
  b->attention_softmax(g, scores, scores);  // in place
  Tensor plain = Tensor::empty({g.batch * g.q_len, heads, g.v_head_dim}, DType::f64);
  b->attention_probs_value(g, k.combine, scores, v, lambda, gate, plain);
  Tensor fused = plain.clone();
  Tensor lse = Tensor::empty({g.batch, g.q_heads, g.q_len}, DType::f64);
  switch (k.combine) {
    case ProbeCombine::diff_v1: {
      Tensor out2 = fused.clone();
      b->diff_attention_forward(g, q, kk, v, lambda, fused, out2, lse);
      break;
    }
    case ProbeCombine::diff_v2: {
      Tensor att = Tensor::empty({g.batch * g.q_len, g.q_heads, g.head_dim}, DType::f64);
      b->diff_v2_attention_forward(g, q, kk, v, gate, att, lse, fused);
      break;
    }
    case ProbeCombine::softmax:
      b->softmax_attention_forward(g, q, kk, v, fused, lse);
      break;
  }
  EXPECT_LT(max_abs_diff(plain, fused), 1e-12);
  // masked entries are 0 and every visible row sums to 1
  const auto p = scores.to_double_vector();
  for (int bb = 0; bb < g.batch; ++bb) {
    for (int m = 0; m < g.q_heads; ++m) {
      for (int t = 0; t < g.q_len; ++t) {
        double sum = 0;
        for (int s = 0; s < g.kv_len; ++s) {
          const double x = p[std::size_t(((bb * g.q_heads + m) * g.q_len + t) * g.kv_len + s)];
          if (s >= probe_visible(g, t)) {
            EXPECT_EQ(x, 0.0);
          }
          sum += x;
        }
        EXPECT_NEAR(sum, 1.0, 1e-12);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, PlainAttention,
                         ::testing::Values(Kind{ProbeCombine::diff_v1, 2, 5, 5, 0, 2, 2, 4},
                                           Kind{ProbeCombine::diff_v1, 1, 7, 7, 0, 4, 2, 4},
                                           Kind{ProbeCombine::diff_v1, 1, 3, 9, 6, 2, 1, 6},
                                           Kind{ProbeCombine::diff_v2, 2, 6, 6, 0, 2, 1, 4},
                                           Kind{ProbeCombine::diff_v2, 1, 2, 7, 5, 2, 2, 4},
                                           Kind{ProbeCombine::softmax, 1, 7, 7, 0, 4, 2, 6},
                                           Kind{ProbeCombine::softmax, 2, 3, 8, 5, 3, 3, 4}));

TEST(ProbeScores, KeyComponentsFollowTheSpecPairing) {
  // DIFF V1, h = 4 heads over h_kv = 2 groups: map 2i+c reads key component 2(i/2)+c.
  AttentionGeometry g = packed_attention_geometry(1, 1, 1, 0, 8, 4, 2, 2, 4);
  const int want[8] = {0, 1, 0, 1, 2, 3, 2, 3};
  for (int m = 0; m < 8; ++m)
    EXPECT_EQ(probe_key_component(g, ProbeCombine::diff_v1, m), want[m]) << m;
  // GQA softmax: 6 maps over 3 kv heads
  g = packed_attention_geometry(1, 1, 1, 0, 6, 3, 3, 2, 2);
  for (int m = 0; m < 6; ++m) EXPECT_EQ(probe_key_component(g, ProbeCombine::softmax, m), m / 2);
}

TEST(ProbeQuantize, MatchesAHandComputationAndSkipsMaskedEntries) {
  auto b = make_cpu_backend(DType::f64);
  // B = 1, two maps, T = S = 2: visible entries (t=0,s=0), (t=1,s=0), (t=1,s=1)
  AttentionGeometry g = packed_attention_geometry(1, 2, 2, 0, 2, 2, 2, 2, 2);
  // map 0: [1.0, (masked 99)], [-0.5, 0.26]; map 1: [2.0, (masked -99)], [0.7, -0.05]
  Tensor s = Tensor::from_vector({1, 2, 2, 2},
                                 {1.0f, 99.f, -0.5f, 0.26f, 2.0f, -99.f, 0.7f, -0.05f}, DType::f64);
  Tensor per_tensor = s.clone();
  b->attention_logits_quantize(g, 3, false, per_tensor);  // Q = 3, step = 2 / 3 (absmax 2, not 99)
  const double st = 2.0 / 3.0;
  const std::vector<double> want_t = {st * 2, 99, st * -1, st * 0, st * 3, -99, st * 1, st * 0};
  auto got = per_tensor.to_double_vector();
  for (std::size_t i = 0; i < want_t.size(); ++i) EXPECT_NEAR(got[i], want_t[i], 1e-6) << i;
  Tensor per_head = s.clone();
  b->attention_logits_quantize(g, 3, true, per_head);  // map 0 step 1/3, map 1 step 2/3
  const std::vector<double> want_h = {1.0, 99, -1.0 / 3 * 2, 1.0 / 3, 2.0, -99, st * 1, 0.0};
  got = per_head.to_double_vector();
  for (std::size_t i = 0; i < want_h.size(); ++i) EXPECT_NEAR(got[i], want_h[i], 1e-6) << i;
  // 8 bits keeps values within half a step
  Tensor eight = s.clone();
  b->attention_logits_quantize(g, 8, false, eight);
  got = eight.to_double_vector();
  const auto orig = s.to_double_vector();
  for (std::size_t i : {0u, 2u, 3u, 4u, 6u, 7u})
    EXPECT_LE(std::abs(got[i] - orig[i]), 0.5 * 2.0 / 127 + 1e-12);
}

TEST(ProbeHistogram, CountsEveryVisibleValueInItsBitPatternBin) {
  auto b = make_cpu_backend(DType::f32);
  std::mt19937_64 rng(3);
  const AttentionGeometry g = packed_attention_geometry(2, 5, 7, 2, 3, 3, 3, 4, 4);
  Tensor x = random_tensor({g.batch, g.q_heads, g.q_len, g.kv_len}, rng, 10.0).to_dtype(DType::f32);
  Tensor counts = Tensor::empty({kAbsHistogramBins}, DType::f64);
  b->abs_histogram(x, &g, counts);
  std::vector<double> want(kAbsHistogramBins, 0.0);
  const auto v = x.to_double_vector();
  std::int64_t visible = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const int t = int(i / std::size_t(g.kv_len)) % g.q_len, s = int(i % std::size_t(g.kv_len));
    if (s > g.q_offset + t) continue;
    ++visible;
    want[std::size_t(abs_histogram_bin(float(std::abs(v[i]))))] += 1;
    // the bin's edges hold the value
    const int bin = abs_histogram_bin(float(v[i]));
    EXPECT_LE(abs_histogram_bin_lower(bin), std::abs(float(v[i])));
    EXPECT_GT(abs_histogram_bin_upper(bin), std::abs(float(v[i])));
  }
  EXPECT_EQ(counts.to_double_vector(), want);
  // selection: |x| >= 5 among visible entries
  Tensor out = Tensor::empty({1000}, DType::f32);
  const std::int64_t n = b->abs_select_at_least(x, &g, 5.0, out);
  std::vector<float> direct;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const int t = int(i / std::size_t(g.kv_len)) % g.q_len, s = int(i % std::size_t(g.kv_len));
    if (s <= g.q_offset + t && std::abs(v[i]) >= 5.0) direct.push_back(std::abs(float(v[i])));
  }
  ASSERT_EQ(n, std::int64_t(direct.size()));
  std::vector<float> got(out.data<float>(), out.data<float>() + n);
  std::sort(got.begin(), got.end());
  std::sort(direct.begin(), direct.end());
  EXPECT_EQ(got, direct);
  // capacity smaller than the count: the count is still exact
  Tensor small = Tensor::empty({2}, DType::f32);
  EXPECT_EQ(b->abs_select_at_least(x, nullptr, 0.0, small), x.numel());
  EXPECT_GT(visible, 0);
}

TEST(ProbeKl, MatchesTheFormulaAndIsZeroForIdenticalRows) {
  auto b = make_cpu_backend(DType::f64);
  std::mt19937_64 rng(9);
  Tensor p = random_tensor({3, 11}, rng, 2.0), q = random_tensor({3, 11}, rng, 2.0);
  Tensor out = Tensor::empty({3}, DType::f64);
  b->kl_divergence_rows(p, q, out);
  const auto a = p.to_double_vector(), c = q.to_double_vector();
  for (int r = 0; r < 3; ++r) {
    double za = 0, zc = 0;
    for (int v = 0; v < 11; ++v) {
      za += std::exp(a[std::size_t(r * 11 + v)]);
      zc += std::exp(c[std::size_t(r * 11 + v)]);
    }
    double kl = 0;
    for (int v = 0; v < 11; ++v) {
      const double pa = std::exp(a[std::size_t(r * 11 + v)]) / za,
                   pc = std::exp(c[std::size_t(r * 11 + v)]) / zc;
      kl += pa * std::log(pa / pc);
    }
    EXPECT_NEAR(out.to_double_vector()[std::size_t(r)], kl, 1e-12);
  }
  b->kl_divergence_rows(p, p, out);
  for (double x : out.to_double_vector()) EXPECT_NEAR(x, 0.0, 1e-15);
}

}  // namespace
}  // namespace difftx
