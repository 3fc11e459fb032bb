// The engine's inference ops on the CPU backend: paged decode attention against the dense
// attention ops on a gathered cache (f64, both kinds, GQA, block boundaries, empty rows), KV pool
// write / gather, RoPE at per-token positions against RoPE at offsets, and the sampling op
// against the host Sampler (greedy, kept sets, empirical frequencies, log-probabilities).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "difftx/cpu/cpu_backend.h"
#include "difftx/engine/sampling.h"
#include "engine_op_cases.h"

namespace difftx::testing {
namespace {

class PagedAttentionCpu : public ::testing::TestWithParam<std::size_t> {};

TEST_P(PagedAttentionCpu, MatchesDenseAttentionOnGatheredCache) {
  const PagedCase c = paged_attention_cases()[GetParam()];
  SCOPED_TRACE(c.name);
  const PagedInputs in = make_paged_inputs(c, 17 + GetParam());
  const Tensor ref = paged_reference(in);
  for (DType dt : {DType::f64, DType::f32}) {
    auto b = make_cpu_backend(dt);
    Tensor out = Tensor::empty(ref.shape(), dt);
    b->fill(out, std::nan(""));  // every element must be written
    Tensor ws;
    b->paged_attention_decode(in.g, in.q.to_dtype(dt), in.k_pool.to_dtype(dt),
                              in.v_pool.to_dtype(dt), in.block_tables, in.context_lens,
                              in.lambda.to_dtype(dt), out, ws);
    const auto got = out.to_double_vector(), want = ref.to_double_vector();
    const double tol = dt == DType::f64 ? 1e-12 : 2e-5;
    for (std::size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], tol * (1 + std::abs(want[i])))
          << dtype_name(dt) << " element " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, PagedAttentionCpu,
                         ::testing::Range<std::size_t>(0, paged_attention_cases().size()),
                         [](const auto& info) { return paged_attention_cases()[info.param].name; });

TEST(PagedAttentionCpuErrors, RejectsBlocksOutsideThePool) {
  PagedInputs in = make_paged_inputs(paged_attention_cases()[0], 3);
  in.block_tables.data<std::int32_t>()[0] = int(in.g.num_slots / in.g.block_size);  // one past
  auto b = make_cpu_backend(DType::f64);
  Tensor out = Tensor::empty({in.g.batch, in.g.out_heads(), in.g.v_head_dim}, DType::f64);
  Tensor ws;
  EXPECT_THROW(b->paged_attention_decode(in.g, in.q, in.k_pool, in.v_pool, in.block_tables,
                                         in.context_lens, in.lambda, out, ws),
               Error);
}

TEST(KvCacheCpu, WriteSkipsNegativeSlotsAndGatherFollowsTheBlockTable) {
  auto b = make_cpu_backend(DType::f64);
  const int block = 4, blocks = 5, kw = 6, vw = 10, n = 7;
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  auto random = [&](Shape s) {
    Tensor t = Tensor::empty(std::move(s), DType::f64);
    for (std::int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = normal(rng);
    return t;
  };
  const double sentinel = 1234.5;
  Tensor k_pool = Tensor::empty({blocks * block, kw}, DType::f64);
  Tensor v_pool = Tensor::empty({blocks * block, vw}, DType::f64);
  b->fill(k_pool, sentinel);
  b->fill(v_pool, sentinel);
  // A sequence of n tokens in blocks {3, 0}; rows come from a wider fused buffer (stride 20).
  const std::vector<std::int32_t> table = {3, 0};
  Tensor fused = random({n, 20});
  Tensor slots = Tensor::empty({n}, DType::i32);
  for (int t = 0; t < n; ++t) slots.data<std::int32_t>()[t] = table[t / block] * block + t % block;
  slots.data<std::int32_t>()[2] = -1;  // padding row: not written
  b->kv_cache_write(fused, 20, fused.reshape({n * 20}).rows(kw, n * 20), 20, slots, k_pool, v_pool);
  Tensor k = Tensor::empty({n, kw}, DType::f64), v = Tensor::empty({n, vw}, DType::f64);
  Tensor table_t = Tensor::from_vector({2}, {3.f, 0.f}, DType::i32);
  b->kv_cache_gather(k_pool, v_pool, table_t, block, k, v);
  for (int t = 0; t < n; ++t) {
    for (int c = 0; c < kw; ++c) {
      const double want = t == 2 ? sentinel : fused.data<double>()[t * 20 + c];
      ASSERT_EQ(k.data<double>()[t * kw + c], want) << "token " << t;
    }
    for (int c = 0; c < vw; ++c) {
      const double want = t == 2 ? sentinel : fused.data<double>()[t * 20 + kw + c];
      ASSERT_EQ(v.data<double>()[t * vw + c], want) << "token " << t;
    }
  }
  // Blocks the sequence does not own are untouched.
  for (int slot = block; slot < 3 * block; ++slot)
    EXPECT_EQ(k_pool.data<double>()[slot * kw], sentinel);
  Tensor bad = Tensor::from_vector({1}, {float(blocks)}, DType::i32);
  Tensor k1 = Tensor::empty({1, kw}, DType::f64), v1 = Tensor::empty({1, vw}, DType::f64);
  EXPECT_THROW(b->kv_cache_gather(k_pool, v_pool, bad, block, k1, v1), Error);
}

TEST(RopePositionsCpu, EqualsRopeAtEachTokensOffset) {
  auto b = make_cpu_backend(DType::f64);
  for (RopeStyle style : {RopeStyle::interleaved, RopeStyle::half_split}) {
    const int n = 5, heads = 3, d = 8, stride = 30;
    const std::vector<int> positions = {0, 7, 3, 1000, 65535};
    std::mt19937_64 rng(9);
    std::normal_distribution<double> normal;
    Tensor x = Tensor::empty({n, stride}, DType::f64);
    for (std::int64_t i = 0; i < x.numel(); ++i) x.data<double>()[i] = normal(rng);
    Tensor want = x.clone();
    for (int r = 0; r < n; ++r) {
      Tensor row = want.rows(r, r + 1);
      b->rope(row, 1, 1, heads, d, stride, positions[r], 10000.0, style, false);
    }
    Tensor pos = Tensor::empty({n}, DType::i32);
    for (int r = 0; r < n; ++r) pos.data<std::int32_t>()[r] = positions[r];
    Tensor got = x.clone();
    b->rope_positions(got, stride, pos, heads, d, 10000.0, style);
    const auto g = got.to_double_vector(), w = want.to_double_vector();
    for (std::size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g[i], w[i], 1e-12) << "element " << i;
  }
}

// ---- sampling

struct SampleOut {
  std::vector<int> tokens;
  std::vector<float> logprobs;
  std::vector<int> top_ids;
  std::vector<float> top_logprobs;
};

SampleOut sample(Backend& b, const std::vector<std::vector<float>>& rows,
                 const std::vector<std::vector<std::int32_t>>& params, int top_n) {
  const int r = int(rows.size()), vocab = int(rows[0].size());
  std::vector<float> flat;
  std::vector<float> pflat;
  for (const auto& row : rows) flat.insert(flat.end(), row.begin(), row.end());
  Tensor logits = Tensor::from_vector({r, vocab}, flat, b.param_dtype());
  Tensor p = Tensor::empty({r, kSampleParamWords}, DType::i32);
  for (int i = 0; i < r; ++i)
    std::copy(params[i].begin(), params[i].end(), p.data<std::int32_t>() + i * kSampleParamWords);
  Tensor tokens = Tensor::empty({r}, DType::i32), lp = Tensor::empty({r}, DType::f32);
  Tensor top_ids = Tensor::empty({r, std::max(top_n, 1)}, DType::i32);
  Tensor top_lp = Tensor::empty({r, std::max(top_n, 1)}, DType::f32);
  Tensor ti = top_n ? top_ids : Tensor(), tl = top_n ? top_lp : Tensor();
  Tensor ws;
  b.sample_tokens(logits, p, top_n, tokens, lp, ti, tl, ws);
  SampleOut o;
  for (int i = 0; i < r; ++i) {
    o.tokens.push_back(tokens.data<std::int32_t>()[i]);
    o.logprobs.push_back(lp.data<float>()[i]);
  }
  for (int i = 0; i < r * top_n; ++i) {
    o.top_ids.push_back(top_ids.data<std::int32_t>()[i]);
    o.top_logprobs.push_back(top_lp.data<float>()[i]);
  }
  return o;
}

std::vector<float> random_row(int vocab, std::uint64_t seed, double scale = 2.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<float> v(static_cast<std::size_t>(vocab));
  for (auto& x : v) x = float(scale * normal(rng));
  return v;
}

double log_sum_exp(const std::vector<float>& v) {
  const double m = *std::max_element(v.begin(), v.end());
  double s = 0;
  for (float x : v) s += std::exp(double(x) - m);
  return m + std::log(s);
}

TEST(SampleTokensCpu, GreedyTakesTheLowestIdAmongTiesAndReportsLogprobs) {
  auto b = make_cpu_backend(DType::f32);
  std::vector<float> row = random_row(50, 1);
  const float top = *std::max_element(row.begin(), row.end()) + 1.0f;
  row[31] = top;
  row[17] = top;  // tie: 17 wins
  row[40] = top - 0.5f;
  const auto out = sample(*b, {row}, {pack_sample_params(0.0, 5, 0.5, 7, 3, 4)}, 6);
  EXPECT_EQ(out.tokens[0], 17);
  const double lse = log_sum_exp(row);
  EXPECT_NEAR(out.logprobs[0], top - lse, 1e-5);
  // top-4 by (logit desc, id asc), then unused entries
  EXPECT_EQ((std::vector<int>(out.top_ids.begin(), out.top_ids.begin() + 4)),
            (std::vector<int>{17, 31, 40, out.top_ids[3]}));
  EXPECT_NEAR(out.top_logprobs[2], row[40] - lse, 1e-5);
  EXPECT_EQ(out.top_ids[4], -1);
  EXPECT_EQ(out.top_ids[5], -1);
  EXPECT_EQ(out.top_logprobs[5], 0.0f);
}

TEST(SampleTokensCpu, InvalidRowsGiveNoToken) {
  auto b = make_cpu_backend(DType::f32);
  std::vector<float> nan_row = random_row(8, 2), inf_row = random_row(8, 3);
  nan_row[5] = std::nanf("");
  std::vector<float> all_neg(8, -std::numeric_limits<float>::infinity());
  inf_row[1] = std::numeric_limits<float>::infinity();
  const auto params = pack_sample_params(1.0, 0, 1.0, 1, 0, 0);
  const auto out = sample(*b, {nan_row, inf_row, all_neg, random_row(8, 4)},
                          {params, params, params, params}, 0);
  EXPECT_EQ(out.tokens[0], -1);
  EXPECT_EQ(out.tokens[1], -1);
  EXPECT_EQ(out.tokens[2], -1);
  EXPECT_GE(out.tokens[3], 0);
}

// For each configuration: every draw lies in the host Sampler's support, draws are reproducible
// from (seed, counter), and over many counters the frequencies match the Sampler's distribution.
TEST(SampleTokensCpu, DrawsFollowTheHostSamplersDistribution) {
  auto b = make_cpu_backend(DType::f32);
  struct Config {
    double t;
    int k;
    double p;
  };
  const std::vector<Config> configs = {{1.0, 0, 1.0}, {0.7, 5, 1.0}, {1.3, 0, 0.8},
                                       {0.9, 8, 0.6}, {2.0, 1, 1.0}, {1.0, 0, 0.05}};
  const int vocab = 24, draws = 4000;
  std::vector<float> row = random_row(vocab, 11, 1.0);
  row[3] = row[9];  // a tie inside the kept set
  for (const Config& cfg : configs) {
    SCOPED_TRACE(::testing::Message() << "T " << cfg.t << " k " << cfg.k << " p " << cfg.p);
    SamplingConfig sc;
    sc.temperature = cfg.t;
    sc.top_k = cfg.k;
    sc.top_p = cfg.p;
    Sampler host(sc);
    const std::vector<double> dist = host.distribution(row);
    std::vector<std::vector<float>> rows(draws, row);
    std::vector<std::vector<std::int32_t>> params;
    for (int i = 0; i < draws; ++i)
      params.push_back(pack_sample_params(cfg.t, cfg.k, cfg.p, 42, i, 0));
    const auto out = sample(*b, rows, params, 0);
    std::vector<int> counts(vocab, 0);
    for (int tok : out.tokens) {
      ASSERT_GE(tok, 0);
      ASSERT_GT(dist[static_cast<std::size_t>(tok)], 0.0)
          << "token " << tok << " outside the kept set";
      ++counts[static_cast<std::size_t>(tok)];
    }
    // 5 sigma of a binomial count, plus one for rounding.
    for (int v = 0; v < vocab; ++v) {
      const double expect = draws * dist[static_cast<std::size_t>(v)];
      const double sigma = std::sqrt(draws * dist[static_cast<std::size_t>(v)] *
                                     (1 - dist[static_cast<std::size_t>(v)]));
      EXPECT_NEAR(counts[static_cast<std::size_t>(v)], expect, 5 * sigma + 1) << "token " << v;
    }
    // Same (seed, counter): same token; the draw does not depend on the row's neighbours.
    const auto again = sample(*b, {rows[0], rows[5]}, {params[5], params[0]}, 0);
    EXPECT_EQ(again.tokens[0], out.tokens[5]);
    EXPECT_EQ(again.tokens[1], out.tokens[0]);
  }
}

TEST(SampleTokensCpu, Fp64LogitsDrawTheSameTokensAsFp32) {
  auto b32 = make_cpu_backend(DType::f32);
  auto b64 = make_cpu_backend(DType::f64);
  std::vector<std::vector<float>> rows;
  std::vector<std::vector<std::int32_t>> params;
  for (int i = 0; i < 64; ++i) {
    rows.push_back(random_row(300, 100 + i));
    params.push_back(pack_sample_params(0.8, i % 3 == 0 ? 20 : 0, i % 2 ? 0.9 : 1.0, 5, i, 3));
  }
  const auto a = sample(*b32, rows, params, 3), c = sample(*b64, rows, params, 3);
  EXPECT_EQ(a.tokens, c.tokens);
  EXPECT_EQ(a.top_ids, c.top_ids);
}

// The default copy_async_patched: the copy, then each patch's words from the other tensor.
TEST(CopyAsyncCpu, PatchedCopyTakesEachRunFromTheOtherTensor) {
  auto b = make_cpu_backend(DType::f32);
  std::vector<float> src_v(20), from_v(6);
  for (int i = 0; i < 20; ++i) src_v[std::size_t(i)] = float(100 + i);
  for (int i = 0; i < 6; ++i) from_v[std::size_t(i)] = float(-1 - i);
  Tensor src = Tensor::from_vector({20}, src_v, DType::i32);
  Tensor from = Tensor::from_vector({6}, from_v, DType::i32);
  Tensor dst = Tensor::zeros({20}, DType::i32);
  b->copy_async_patched(dst, src, {{2, 0, 2}, {10, 4, 1}, {19, 5, 1}}, from);
  b->mark_queue()->wait();
  std::vector<int> want(20);
  for (int i = 0; i < 20; ++i) want[std::size_t(i)] = 100 + i;
  want[2] = -1;
  want[3] = -2;
  want[10] = -5;
  want[19] = -6;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(dst.data<std::int32_t>()[i], want[std::size_t(i)]) << i;
}

}  // namespace
}  // namespace difftx::testing
