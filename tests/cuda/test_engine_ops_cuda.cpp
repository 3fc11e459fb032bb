// The engine's CUDA ops against the CPU oracle (label gpu; skipped without a device):
//   - paged decode attention on every op case with d = 64 / 128 (GQA ratios, odd lengths,
//     block boundaries, empty rows, long contexts through split-K) and on a wide batch that
//     runs without splits, and with each sequence's newest K/V row written by a KV write queued
//     just before it (what the staged kernel must wait for); error measured as in
//     test_cuda_backend_ops: the kernel's relative L2 error against the f64 reference must be at
//     most twice that of a naive bf16 computation (f32 on the same bf16 inputs, output rounded to
//     bf16) plus a floor;
//   - KV pool write / gather: exact copies, padding rows skipped;
//   - RoPE at per-token positions against the CPU op on the same bf16 inputs, and fused with the
//     KV pool write bit-identical to the two ops; the attention input in one op (RMSNorm, QKV
//     projection, RoPE, KV write: the GEMV epilogue) bit-identical to the fused projection
//     followed by RoPE + KV write;
//   - DIFF V1 paged attention with the head RMSNorm folded in against the CPU pair in f64, and
//     a second call on the same workspace (its arrival counters reset) bit-identical;
//   - the fused projections of the decode path (QKV concat, residual accumulate, SwiGLU, and
//     the RMSNorm-folded concat and SwiGLU) for 1, 3, 4, 5, 8 and 12 rows, against the CPU ops
//     in f64: up to 4 rows the GEMV kernel, more cuBLASLt and the unfused ops
//     (scripts/gpu/run_engine_suite.sh runs them again with DIFFTX_GEMV_MAX_ROWS=8, where 5 and
//     8 rows take the GEMV too), and at 1 and 2 rows on widths that give each warp several
//     column groups of several weight batches; at one row with K >= 2,048 the split-K GEMV
//     (K 2,048-8,192: one to four input chunks per thread); relative L2 error and worst element;
//   - sampling: greedy and log-probabilities against the CPU op; seeded draws identical to the
//     CPU op's in nearly every row (f32 vs f64 Gumbel scores can differ only at near-ties) and
//     always inside the CPU kept set;
//   - a captured graph of these ops replays to the eager results.
// Outputs are poisoned with NaN first and must come back finite.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <random>

#include "difftx/cpu/cpu_backend.h"
#include "difftx/cuda/backend/cuda_backend.h"
#include "difftx/engine/sampling.h"
#include "ops/engine_op_cases.h"

namespace difftx::testing {
namespace {

Backend* gpu() {
  static std::unique_ptr<Backend> b = cuda_device_available() ? make_cuda_backend(0) : nullptr;
  return b.get();
}

#define REQUIRE_GPU() \
  if (!gpu()) GTEST_SKIP() << "no CUDA device"

Tensor round_bf16(const Tensor& host_f64) {
  return host_f64.to_dtype(DType::bf16).to_dtype(DType::f64);
}
Tensor dev(const Tensor& host, DType d) {
  return host.to_dtype(d).to(Device::cuda);
}

double rel_l2(const std::vector<double>& x, const std::vector<double>& r) {
  double e = 0, n = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    e += (x[i] - r[i]) * (x[i] - r[i]);
    n += r[i] * r[i];
  }
  return n > 0 ? std::sqrt(e / n) : std::sqrt(e);
}

Tensor random_bf16(std::int64_t rows, std::int64_t cols, std::uint64_t seed, double scale,
                   double mean = 0.0);

void check_paged(const PagedCase& c, std::uint64_t seed) {
  SCOPED_TRACE(c.name);
  PagedInputs in = make_paged_inputs(c, seed);
  in.q = round_bf16(in.q);
  in.k_pool = round_bf16(in.k_pool);
  in.v_pool = round_bf16(in.v_pool);
  in.lambda = in.lambda.to_dtype(DType::f32).to_dtype(DType::f64);
  const Tensor ref = paged_reference(in);
  // naive bf16: f32 arithmetic on the same inputs, the output rounded to bf16
  auto f32 = make_cpu_backend(DType::f32);
  Tensor naive = Tensor::empty(ref.shape(), DType::f32);
  Tensor none;
  f32->paged_attention_decode(in.g, in.q.to_dtype(DType::f32), in.k_pool.to_dtype(DType::f32),
                              in.v_pool.to_dtype(DType::f32), in.block_tables, in.context_lens,
                              in.lambda.to_dtype(DType::f32), naive, none);
  naive = naive.to_dtype(DType::bf16);

  Backend& b = *gpu();
  Tensor out = Tensor::empty(ref.shape(), DType::bf16, Device::cuda);
  b.fill(out, std::nan(""));
  const std::int64_t ws_bytes = b.paged_attention_workspace_bytes(in.g);
  Tensor ws =
      ws_bytes > 0 ? Tensor::empty({(ws_bytes + 7) / 8}, DType::f64, Device::cuda) : Tensor();
  if (ws_bytes > 0) b.fill(ws, 0.0);  // the arrival counters start at zero
  const Tensor q = dev(in.q, DType::bf16), kp = dev(in.k_pool, DType::bf16),
               vp = dev(in.v_pool, DType::bf16), tables = in.block_tables.to(Device::cuda),
               lens = in.context_lens.to(Device::cuda), lambda = dev(in.lambda, DType::f32);
  b.paged_attention_decode(in.g, q, kp, vp, tables, lens, lambda, out, ws);
  const auto got = out.to_double_vector(), want = ref.to_double_vector(),
             nv = naive.to_double_vector();
  // A second call on the same workspace (the counters were reset) gives the same bits.
  b.fill(out, std::nan(""));
  b.paged_attention_decode(in.g, q, kp, vp, tables, lens, lambda, out, ws);
  EXPECT_EQ(out.to_double_vector(), got) << "second call on the same workspace";
  for (std::size_t i = 0; i < got.size(); ++i)
    ASSERT_TRUE(std::isfinite(got[i])) << "element " << i;
  const double e_gpu = rel_l2(got, want), e_naive = rel_l2(nv, want);
  // f32 softmax and accumulation in another order than the naive: 1e-3 floor (half a bf16 ulp)
  EXPECT_LE(e_gpu, 2 * e_naive + 1e-3) << "naive error " << e_naive;
  // rows of length 0 are exactly zero
  const int per_row = in.g.out_heads() * in.g.v_head_dim;
  for (int r = 0; r < in.g.batch; ++r) {
    if (in.context_lens.data<std::int32_t>()[r] != 0) continue;
    for (int i = 0; i < per_row; ++i) ASSERT_EQ(got[std::size_t(r) * per_row + i], 0.0);
  }
  if (in.g.kind != PagedAttentionKind::diff) return;

  // DIFF V1 with the head RMSNorm folded in, against the CPU op (the unfused pair) in f64; the
  // naive computation rounds the attention output to bf16 before the norm, as the GPU does.
  SCOPED_TRACE("with the head norm");
  const int heads = in.g.batch * in.g.out_heads(), dv = in.g.v_head_dim;
  const double eps = 1e-5, scale = 0.8;
  const Tensor gain = random_bf16(1, dv, seed + 100, 0.2, 1.0).reshape({dv});
  auto normed_on = [&](Backend& be, const Tensor& att_in) {  // rmsnorm of att rows, f64 out
    Tensor rows = att_in.reshape({heads, dv}), o = Tensor::empty({heads, dv}, att_in.dtype());
    Tensor rstd = Tensor::empty({heads}, be.param_dtype());
    be.rmsnorm_forward(rows, gain.to_dtype(be.param_dtype()), eps, scale, o, rstd);
    return std::pair{o.to_dtype(DType::f64), rstd.to_dtype(DType::f64)};
  };
  auto f64 = make_cpu_backend(DType::f64);
  const auto [ref_n, ref_rstd] = normed_on(*f64, ref);
  const Tensor naive_n = normed_on(*f32, naive.to_dtype(DType::f32)).first.to_dtype(DType::bf16);
  Tensor out_n = Tensor::empty(ref.shape(), DType::bf16, Device::cuda);
  Tensor att = Tensor::empty(ref.shape(), DType::bf16, Device::cuda);
  Tensor rstd = Tensor::empty({heads}, DType::f32, Device::cuda);
  b.fill(out_n, std::nan(""));
  b.fill(rstd, std::nan(""));
  b.paged_attention_decode_head_norm(in.g, q, kp, vp, tables, lens, lambda,
                                     gain.to_dtype(DType::f32).to(Device::cuda), eps, scale, att,
                                     out_n, rstd, ws);
  const auto gn = out_n.to_double_vector(), rn = ref_n.to_double_vector(),
             nn = naive_n.to_double_vector();
  for (std::size_t i = 0; i < gn.size(); ++i) ASSERT_TRUE(std::isfinite(gn[i])) << "element " << i;
  EXPECT_LE(rel_l2(gn, rn), 2 * rel_l2(nn, rn) + 1e-3) << "naive error " << rel_l2(nn, rn);
  const auto gr = rstd.to_double_vector(), rr = ref_rstd.to_double_vector();
  for (int i = 0; i < heads; ++i) {
    // rstd of the bf16-rounded output vs of the exact one; empty rows: 1 / sqrt(eps) both
    EXPECT_NEAR(gr[std::size_t(i)], rr[std::size_t(i)], 1e-2 * rr[std::size_t(i)]) << "head " << i;
  }
}

TEST(EngineOpsCuda, PagedAttentionMatchesTheCpuOracle) {
  REQUIRE_GPU();
  std::uint64_t seed = 5;
  for (const PagedCase& c : paged_attention_cases()) {
    if (paged_case_runs_on_cuda(c)) check_paged(c, seed++);
  }
}

TEST(EngineOpsCuda, PagedAttentionWideBatchWithoutSplits) {
  REQUIRE_GPU();
  std::mt19937_64 rng(3);
  for (PagedAttentionKind kind : {PagedAttentionKind::diff, PagedAttentionKind::softmax}) {
    PagedCase c;
    c.kind = kind;
    const bool diff = kind == PagedAttentionKind::diff;
    c.q_heads = diff ? 16 : 8;  // V1: 8 heads over 4 kv heads; softmax: GQA 2
    c.k_heads = diff ? 8 : 4;
    c.v_heads = 4;
    c.head_dim = 64;
    c.name = diff ? "diff_wide" : "softmax_wide";
    for (int i = 0; i < 96; ++i) c.lengths.push_back(1 + int(rng() % 300));
    check_paged(c, 77);
  }
}

// In a decode step the kernel just before the attention writes each sequence's newest K/V row;
// the staged kernel reads everything else before it waits on that kernel (PDL). Here the pools
// hold a stale newest row (large values) until a KV write queued right before the attention
// puts the true one there: the output must equal the attention over the true pools, bit for
// bit, every time. (How often a kernel that read the newest row too early would be caught
// depends on how long the KV write takes to store it after the attention may start: ~1-2 us
// here; this has not been measured with such a kernel.)
TEST(EngineOpsCuda, PagedAttentionReadsTheNewestTokenWrittenJustBefore) {
  REQUIRE_GPU();
  Backend& b = *gpu();
  // DIFF with splits, DIFF over many blocks, softmax GQA
  for (const char* name : {"diff_h4_hkv2_d64_bs16_len_3_129_200", "diff_h2_hkv2_d64_bs16_len_3000",
                           "softmax_h8_hkv2_d64_bs16_len_100_1_0_257"}) {
    const std::vector<PagedCase> cases = paged_attention_cases();
    const auto found = std::find_if(cases.begin(), cases.end(),
                                    [&](const PagedCase& k) { return k.name == name; });
    ASSERT_NE(found, cases.end()) << "no paged case named " << name;
    const PagedCase& c = *found;
    SCOPED_TRACE(c.name);
    const PagedInputs in = make_paged_inputs(c, 21);
    const int B = in.g.batch, bs = in.g.block_size, mb = in.g.max_blocks;
    const std::int64_t kw = in.k_pool.shape()[1], vw = in.v_pool.shape()[1];
    Tensor slots = Tensor::empty({B}, DType::i32);
    for (int r = 0; r < B; ++r) {
      const int len = in.context_lens.data<std::int32_t>()[r];
      slots.data<std::int32_t>()[r] =
          len == 0
              ? -1
              : in.block_tables.data<std::int32_t>()[r * mb + (len - 1) / bs] * bs + (len - 1) % bs;
    }
    // The newest rows (B, width) and pools where those rows are stale.
    Tensor k_new = Tensor::zeros({B, kw}, DType::f64), v_new = Tensor::zeros({B, vw}, DType::f64);
    Tensor k_stale = in.k_pool.clone(), v_stale = in.v_pool.clone();
    for (int r = 0; r < B; ++r) {
      const int slot = slots.data<std::int32_t>()[r];
      if (slot < 0) continue;
      for (std::int64_t e = 0; e < kw; ++e) {
        k_new.data<double>()[r * kw + e] = in.k_pool.data<double>()[slot * kw + e];
        k_stale.data<double>()[slot * kw + e] = 4.0;
      }
      for (std::int64_t e = 0; e < vw; ++e) {
        v_new.data<double>()[r * vw + e] = in.v_pool.data<double>()[slot * vw + e];
        v_stale.data<double>()[slot * vw + e] = -9.0;
      }
    }
    const std::int64_t ws_bytes = b.paged_attention_workspace_bytes(in.g);
    Tensor ws =
        ws_bytes > 0 ? Tensor::empty({(ws_bytes + 7) / 8}, DType::f64, Device::cuda) : Tensor();
    if (ws_bytes > 0) b.fill(ws, 0.0);
    const Tensor q = dev(in.q, DType::bf16), tables = in.block_tables.to(Device::cuda),
                 lens = in.context_lens.to(Device::cuda), lambda = dev(in.lambda, DType::f32),
                 kn = dev(k_new, DType::bf16), vn = dev(v_new, DType::bf16),
                 slots_dev = slots.to(Device::cuda);
    const Shape out_shape{B, in.g.out_heads() * in.g.v_head_dim};
    Tensor want = Tensor::empty(out_shape, DType::bf16, Device::cuda);
    Tensor kp = dev(in.k_pool, DType::bf16), vp = dev(in.v_pool, DType::bf16);
    b.paged_attention_decode(in.g, q, kp, vp, tables, lens, lambda, want, ws);
    const auto expected = want.to_double_vector();
    const Tensor k_stale_dev = dev(k_stale, DType::bf16), v_stale_dev = dev(v_stale, DType::bf16);
    Tensor out = Tensor::empty(out_shape, DType::bf16, Device::cuda);
    for (int round = 0; round < 20; ++round) {
      b.convert(k_stale_dev, kp);  // stale newest rows back
      b.convert(v_stale_dev, vp);
      b.fill(out, std::nan(""));
      b.kv_cache_write(kn, kw, vn, vw, slots_dev, kp, vp);
      b.paged_attention_decode(in.g, q, kp, vp, tables, lens, lambda, out, ws);
      ASSERT_EQ(out.to_double_vector(), expected) << "round " << round;
    }
  }
}

TEST(EngineOpsCuda, KvPoolWriteAndGatherAreExactCopies) {
  REQUIRE_GPU();
  Backend& b = *gpu();
  const int block = 16, blocks = 9, kw = 128, vw = 256, n = 37, stride = 512;
  std::mt19937_64 rng(11);
  std::normal_distribution<float> normal;
  std::vector<float> src(std::size_t(n) * stride);
  for (auto& x : src) x = normal(rng);
  Tensor fused = Tensor::from_vector({n, stride}, src, DType::bf16);
  const std::vector<std::int32_t> table = {7, 2, 5};
  Tensor slots = Tensor::empty({n}, DType::i32);
  for (int t = 0; t < n; ++t) slots.data<std::int32_t>()[t] = table[t / block] * block + t % block;
  slots.data<std::int32_t>()[20] = -1;
  Tensor k_pool = Tensor::empty({blocks * block, kw}, DType::bf16, Device::cuda);
  Tensor v_pool = Tensor::empty({blocks * block, vw}, DType::bf16, Device::cuda);
  b.fill(k_pool, 0.5);
  b.fill(v_pool, 0.5);
  Tensor fused_dev = fused.to(Device::cuda);
  b.kv_cache_write(fused_dev, stride, fused_dev.reshape({n * stride}).rows(kw, n * stride), stride,
                   slots.to(Device::cuda), k_pool, v_pool);
  Tensor k = Tensor::empty({n, kw}, DType::bf16, Device::cuda);
  Tensor v = Tensor::empty({n, vw}, DType::bf16, Device::cuda);
  Tensor t_dev = Tensor::from_vector({3}, {7.f, 2.f, 5.f}, DType::i32).to(Device::cuda);
  b.kv_cache_gather(k_pool, v_pool, t_dev, block, k, v);
  const auto kh = k.to_double_vector(), vh = v.to_double_vector(), fh = fused.to_double_vector();
  for (int t = 0; t < n; ++t) {
    for (int c = 0; c < kw; ++c) {
      ASSERT_EQ(kh[std::size_t(t) * kw + c], t == 20 ? 0.5 : fh[std::size_t(t) * stride + c]);
    }
    for (int c = 0; c < vw; ++c) {
      ASSERT_EQ(vh[std::size_t(t) * vw + c], t == 20 ? 0.5 : fh[std::size_t(t) * stride + kw + c]);
    }
  }
}

TEST(EngineOpsCuda, RopePositionsMatchesTheCpuOp) {
  REQUIRE_GPU();
  for (RopeStyle style : {RopeStyle::interleaved, RopeStyle::half_split}) {
    const int n = 9, heads = 6, d = 64, stride = 448;
    std::mt19937_64 rng(13);
    std::normal_distribution<float> normal;
    std::vector<float> x(std::size_t(n) * stride);
    for (auto& e : x) e = normal(rng);
    Tensor host = Tensor::from_vector({n, stride}, x, DType::bf16);
    Tensor pos = Tensor::empty({n}, DType::i32);
    const int positions[n] = {0, 1, 17, 511, 512, 4095, 30000, 65000, 3};
    std::copy(positions, positions + n, pos.data<std::int32_t>());
    auto cpu = make_cpu_backend(DType::f64);
    Tensor want = host.to_dtype(DType::f64);
    cpu->rope_positions(want, stride, pos, heads, d, 10000.0, style);
    Tensor got = host.to(Device::cuda);
    gpu()->rope_positions(got, stride, pos.to(Device::cuda), heads, d, 10000.0, style);
    const auto g = got.to_double_vector(), w = want.to_double_vector();
    for (std::size_t i = 0; i < g.size(); ++i) {
      // bf16 output rounding (2^-8 relative) and f32 sine/cosine of a reduced angle
      ASSERT_NEAR(g[i], w[i], 8e-3 * std::abs(w[i]) + 2e-3) << "element " << i;
    }
  }
}

TEST(EngineOpsCuda, RopeKvCacheWriteEqualsRopeThenKvWrite) {
  REQUIRE_GPU();
  Backend& b = *gpu();
  // bf16 with 16-byte v rows (vector copies) and f32 with an odd v width (element copies)
  struct Layout {
    DType dtype;
    int q_heads, k_heads, v_width;
  };
  for (const Layout& sh : {Layout{DType::bf16, 12, 12, 384}, Layout{DType::f32, 6, 2, 33}}) {
    for (RopeStyle style : {RopeStyle::interleaved, RopeStyle::half_split}) {
      SCOPED_TRACE(::testing::Message() << dtype_name(sh.dtype) << " v " << sh.v_width);
      const int n = 7, d = 64, slots_total = 64;
      const int kw = sh.k_heads * d, stride = (sh.q_heads + sh.k_heads) * d + sh.v_width;
      std::mt19937_64 rng(21);
      std::normal_distribution<float> normal;
      std::vector<float> x(std::size_t(n) * stride);
      for (auto& e : x) e = normal(rng);
      const Tensor host = Tensor::from_vector({n, stride}, x, sh.dtype);
      Tensor pos = Tensor::empty({n}, DType::i32), slots = Tensor::empty({n}, DType::i32);
      const int positions[n] = {0, 5, 17, 511, 4095, 30000, 3};
      const int slot_of[n] = {9, 0, 63, -1, 31, 32, 8};  // -1: a padding row
      std::copy(positions, positions + n, pos.data<std::int32_t>());
      std::copy(slot_of, slot_of + n, slots.data<std::int32_t>());
      const Tensor pos_d = pos.to(Device::cuda), slots_d = slots.to(Device::cuda);
      auto pools = [&] {
        Tensor k = Tensor::empty({slots_total, kw}, sh.dtype, Device::cuda);
        Tensor v = Tensor::empty({slots_total, sh.v_width}, sh.dtype, Device::cuda);
        b.fill(k, 0.25);
        b.fill(v, 0.25);
        return std::pair{k, v};
      };
      // unfused: rope_positions, then kv_cache_write of the k and v blocks
      Tensor want = host.to(Device::cuda);
      auto [k_want, v_want] = pools();
      b.rope_positions(want, stride, pos_d, sh.q_heads + sh.k_heads, d, 10000.0, style);
      const Tensor flat = want.reshape({want.numel()});
      const std::int64_t k_col = std::int64_t(sh.q_heads) * d, v_col = k_col + kw;
      b.kv_cache_write(flat.rows(k_col, flat.numel()), stride, flat.rows(v_col, flat.numel()),
                       stride, slots_d, k_want, v_want);
      // fused
      Tensor got = host.to(Device::cuda);
      auto [k_got, v_got] = pools();
      b.rope_kv_cache_write(got, stride, pos_d, sh.q_heads, sh.k_heads, d, 10000.0, style, slots_d,
                            k_got, v_got);
      EXPECT_EQ(got.to_double_vector(), want.to_double_vector()) << "rotated rows";
      EXPECT_EQ(k_got.to_double_vector(), k_want.to_double_vector()) << "k pool";
      EXPECT_EQ(v_got.to_double_vector(), v_want.to_double_vector()) << "v pool";
    }
  }
}

// Host f64 values rounded to bf16, (rows, cols), normal with standard deviation `scale`.
Tensor random_bf16(std::int64_t rows, std::int64_t cols, std::uint64_t seed, double scale,
                   double mean) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(std::size_t(rows * cols));
  for (auto& x : v) x = float(mean + scale * normal(rng));
  return round_bf16(Tensor::from_vector({rows, cols}, v, DType::f64));
}

// The GPU result against the f64 reference: relative L2 error at most twice that of the naive
// bf16 computation (f32 on the same inputs, bf16 intermediates and output) plus a floor.
void expect_close(const Tensor& gpu_out, const Tensor& ref, const Tensor& naive, const char* what) {
  const auto g = gpu_out.to_double_vector(), r = ref.to_double_vector(),
             n = naive.to_dtype(DType::bf16).to_double_vector();
  for (std::size_t i = 0; i < g.size(); ++i) ASSERT_TRUE(std::isfinite(g[i])) << what << " " << i;
  const double e = rel_l2(g, r), e_naive = rel_l2(n, r);
  EXPECT_LE(e, 2 * e_naive + 1e-3) << what << ": naive error " << e_naive;
  // and element-wise, so that a few wrong outputs among many cannot hide in the L2 norm
  double worst = 0, worst_naive = 0, scale = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    if (std::abs(g[i] - r[i]) > worst) worst = std::abs(g[i] - r[i]), at = i;
    worst_naive = std::max(worst_naive, std::abs(n[i] - r[i]));
    scale = std::max(scale, std::abs(r[i]));
  }
  EXPECT_LE(worst, 4 * worst_naive + 1e-2 * scale)
      << what << ": element " << at << " (naive's worst error " << worst_naive << ")";
}

TEST(EngineOpsCuda, RmsnormQkvRopeKvWriteEqualsTheUnfusedOps) {
  REQUIRE_GPU();
  Backend& b = *gpu();
  const int d = 64, q_heads = 4, k_heads = 2, v_width = 128, slots_total = 40;
  const int width = (q_heads + k_heads) * d + v_width;
  // K 8,192: the one-row calls take the split-K GEMV (the fused op, with its table of rotations,
  // and the projection alike).
  for (const int k : {264, 8192}) {
    for (const int n : {1, 3, 4, 5, 8, 12}) {  // over 4 rows (by default): the unfused fallback
      for (RopeStyle style : {RopeStyle::interleaved, RopeStyle::half_split}) {
        SCOPED_TRACE(::testing::Message() << n << " rows, K " << k << ", style " << int(style));
        const std::uint64_t seed = 77 + n;
        auto cuda = [](const Tensor& t) { return t.to_dtype(DType::bf16).to(Device::cuda); };
        const Tensor x = cuda(random_bf16(n, k, seed, 1.0));
        const Tensor gain = random_bf16(1, k, seed + 1, 0.2, 1.0)
                                .reshape({k})
                                .to_dtype(DType::f32)
                                .to(Device::cuda);
        const Tensor wq = cuda(random_bf16(q_heads * d, k, seed + 2, 0.05)),
                     wk = cuda(random_bf16(k_heads * d, k, seed + 3, 0.05)),
                     wv = cuda(random_bf16(v_width, k, seed + 4, 0.05));
        Tensor pos = Tensor::empty({n}, DType::i32), slots = Tensor::empty({n}, DType::i32);
        for (int r = 0; r < n; ++r) {
          pos.data<std::int32_t>()[r] = 37 * r + 5;
          slots.data<std::int32_t>()[r] = r == 1 ? -1 : 3 * r + 1;  // row 1: padding
        }
        const Tensor pos_d = pos.to(Device::cuda), slots_d = slots.to(Device::cuda);
        struct Out {
          Tensor qkv, xn, rstd, k_pool, v_pool;
        };
        auto make = [&] {
          Out o{Tensor::empty({n, width}, DType::bf16, Device::cuda),
                Tensor::empty({n, k}, DType::bf16, Device::cuda),
                Tensor::empty({n}, DType::f32, Device::cuda),
                Tensor::empty({slots_total, k_heads * d}, DType::bf16, Device::cuda),
                Tensor::empty({slots_total, v_width}, DType::bf16, Device::cuda)};
          b.fill(o.qkv, std::nan(""));
          b.fill(o.k_pool, 0.5);
          b.fill(o.v_pool, 0.5);
          return o;
        };
        Out want = make(), got = make();
        b.rmsnorm_linear_forward_concat(x, gain, 1e-5, {&wq, &wk, &wv}, want.xn, want.rstd,
                                        want.qkv);
        b.rope_kv_cache_write(want.qkv, width, pos_d, q_heads, k_heads, d, 10000.0, style, slots_d,
                              want.k_pool, want.v_pool);
        b.rmsnorm_qkv_rope_kv_write(x, gain, 1e-5, wq, wk, wv, got.xn, got.rstd, got.qkv, pos_d, d,
                                    10000.0, style, slots_d, got.k_pool, got.v_pool);
        EXPECT_EQ(got.qkv.to_double_vector(), want.qkv.to_double_vector()) << "qkv";
        EXPECT_EQ(got.xn.to_double_vector(), want.xn.to_double_vector()) << "xn";
        EXPECT_EQ(got.rstd.to_double_vector(), want.rstd.to_double_vector()) << "rstd";
        EXPECT_EQ(got.k_pool.to_double_vector(), want.k_pool.to_double_vector()) << "k pool";
        EXPECT_EQ(got.v_pool.to_double_vector(), want.v_pool.to_double_vector()) << "v pool";
      }
    }
  }
}

// Output widths (q, k, v of the concat; the accumulate's is q's; SwiGLU's), rows and input
// widths of the projection cases.
struct ProjectionShape {
  int q, k_, v, ffn;
  std::vector<int> rows, ks;
};

// The GEMV's ops (concat, accumulate, SwiGLU, each RMSNorm-fused op) on the GPU against the f64
// CPU ops, with the naive f32 path's error as the budget.
void expect_projections_match_the_cpu(const std::vector<ProjectionShape>& shapes) {
  Backend& b = *gpu();
  auto f64 = make_cpu_backend(DType::f64);
  auto f32 = make_cpu_backend(DType::f32);
  const double eps = 1e-5;
  for (const ProjectionShape& sh : shapes) {
    const int cat_w = sh.q + sh.k_ + sh.v;
    for (const int n : sh.rows) {
      for (const int k : sh.ks) {
        SCOPED_TRACE(::testing::Message() << n << " rows, K " << k << ", concat width " << cat_w);
        const std::uint64_t seed = 1000 * n + k;
        const Tensor x = random_bf16(n, k, seed, 1.0);
        const Tensor gain = random_bf16(1, k, seed + 1, 0.2, 1.0).reshape({k});
        const Tensor wq = random_bf16(sh.q, k, seed + 2, 0.05),
                     wk = random_bf16(sh.k_, k, seed + 3, 0.05),
                     wv = random_bf16(sh.v, k, seed + 4, 0.05);
        const Tensor wg = random_bf16(sh.ffn, k, seed + 5, 0.05),
                     wu = random_bf16(sh.ffn, k, seed + 6, 0.05);
        const Tensor acc0 = random_bf16(n, sh.q, seed + 7, 1.0);
        auto cuda = [](const Tensor& t) { return t.to_dtype(DType::bf16).to(Device::cuda); };
        auto on = [&](Backend& be, const Tensor& t) {
          return be.device() == Device::cuda ? cuda(t) : t.to_dtype(be.act_dtype());
        };
        // Runs every op on a backend; returns concat, acc, swiglu, fused concat, xn, rstd, fused
        // swiglu. `round_xn`: the naive path rounds the normalized rows to bf16, as the GPU does.
        auto run = [&](Backend& be, bool round_xn) {
          const Device d = be.device();
          const DType a = be.act_dtype();
          const Tensor X = on(be, x), G = d == Device::cuda ? gain.to_dtype(DType::f32).to(d)
                                                            : gain.to_dtype(be.param_dtype());
          const Tensor Q = on(be, wq), K = on(be, wk), V = on(be, wv), WG = on(be, wg),
                       WU = on(be, wu);
          std::vector<Tensor> outs;
          Tensor cat = Tensor::empty({n, cat_w}, a, d);
          be.linear_forward_concat(X, {&Q, &K, &V}, cat);
          Tensor acc = on(be, acc0);
          be.linear_forward_accumulate(X, Q, acc);
          Tensor gate = Tensor::empty({n, sh.ffn}, a, d), up = Tensor::empty({n, sh.ffn}, a, d),
                 sw = Tensor::empty({n, sh.ffn}, a, d);
          be.swiglu_linear_forward(X, WG, WU, gate, up, sw);
          Tensor xn = Tensor::empty({n, k}, a, d), rstd = Tensor::empty({n}, DType::f32, d);
          if (d == Device::cpu) rstd = Tensor::empty({n}, be.param_dtype(), d);
          Tensor fcat = Tensor::empty({n, cat_w}, a, d), fsw = Tensor::empty({n, sh.ffn}, a, d);
          if (round_xn) {
            be.rmsnorm_forward(X, G, eps, 1.0, xn, rstd);
            const Tensor xr = round_bf16(xn.to_dtype(DType::f64)).to_dtype(a);
            be.linear_forward_concat(xr, {&Q, &K, &V}, fcat);
            be.swiglu_linear_forward(xr, WG, WU, gate, up, fsw);
          } else {
            be.rmsnorm_linear_forward_concat(X, G, eps, {&Q, &K, &V}, xn, rstd, fcat);
            Tensor xn2 = Tensor::empty({n, k}, a, d),
                   rstd2 = Tensor::empty(rstd.shape(), rstd.dtype(), d);
            be.rmsnorm_swiglu_linear_forward(X, G, eps, WG, WU, xn2, rstd2, gate, up, fsw);
            EXPECT_EQ(xn2.to_double_vector(), xn.to_double_vector()) << "xn of the two fused ops";
          }
          for (Tensor* t : {&cat, &acc, &sw, &fcat, &xn, &rstd, &fsw})
            outs.push_back(t->to(Device::cpu).to_dtype(DType::f64));
          return outs;
        };
        const auto ref = run(*f64, false), naive = run(*f32, true), got = run(b, false);
        const char* names[] = {"concat", "accumulate", "swiglu",        "rmsnorm+concat",
                               "xn",     "rstd",       "rmsnorm+swiglu"};
        for (std::size_t i = 0; i < ref.size(); ++i)
          expect_close(got[i], ref[i], naive[i], names[i]);
      }
    }
  }
}

// The narrow shape gives each warp one column group of one weight batch; the wide one (one and
// two rows) several groups per warp at 1, 2 and 4 columns per warp, of one weight batch (K 488
// and 776: the one-row GEMV loads the next group's weights while it computes one) and of
// several (K 2056; scripts/gpu/run_engine_suite.sh runs it again with DIFFTX_GEMV_AHEAD=2,
// where the one-row GEMV loads each next batch ahead too).
TEST(EngineOpsCuda, FusedProjectionsMatchTheCpuOps) {
  REQUIRE_GPU();
  expect_projections_match_the_cpu({{40, 24, 8, 72, {1, 3, 4, 5, 8, 12}, {64, 776}},
                                    {9000, 5000, 3000, 4600, {1, 2}, {488, 776, 2056}}});
}

// One row, inputs of 72 (nine 16-byte chunks: most lanes of a warp hold none), one or two column
// groups per warp of the one-row GEMV, which then loads the next group's weights ahead.
TEST(EngineOpsCuda, FusedProjectionsOfNarrowInputs) {
  REQUIRE_GPU();
  expect_projections_match_the_cpu({{1800, 1000, 602, 3301, {1}, {72}}});
}

// One row with K from 2,048 on: the split-K GEMV, with one to four input chunks per thread (K
// 2,048, 5,504: 688 chunks, 8,192), exclusive (under 4 MiB of weights) or not, blocks of under
// one batch of units (the first shape) and of several (the second, K 5,504: ~19 units a block,
// batches of 4 rows); two rows: the row-per-warp kernel on the same shapes.
// (scripts/gpu/run_engine_suite.sh runs the projection cases again with DIFFTX_GEMV_SPLITK=0,
// where the row-per-warp kernel takes every call, with DIFFTX_GEMV_SPLITK_MIN_MB=4, where it
// takes the one-row calls under 4 MiB, and without the QKV kernel's table of rotations.)
TEST(EngineOpsCuda, FusedProjectionsOfLongInputs) {
  REQUIRE_GPU();
  expect_projections_match_the_cpu(
      {{520, 264, 136, 1100, {1, 2}, {2048, 5504, 8192}}, {3000, 1000, 1000, 3000, {1}, {5504}}});
}

struct Sampled {
  std::vector<int> tokens;
  std::vector<float> logprobs;
  std::vector<int> top_ids;
  std::vector<float> top_lp;
};

Sampled sample_on(Backend& b, const Tensor& logits_host, const Tensor& params_host, int top_n) {
  const std::int64_t rows = logits_host.dim(0);
  const bool cuda = b.device() == Device::cuda;
  auto put = [&](const Tensor& t) { return cuda ? t.to(Device::cuda) : t; };
  Tensor logits = put(cuda ? logits_host : logits_host.to_dtype(b.param_dtype()));
  Tensor params = put(params_host);
  Tensor tokens = Tensor::empty({rows}, DType::i32, b.device());
  Tensor lp = Tensor::empty({rows}, DType::f32, b.device());
  Tensor ids = Tensor::empty({rows, std::max(1, top_n)}, DType::i32, b.device());
  Tensor tlp = Tensor::empty({rows, std::max(1, top_n)}, DType::f32, b.device());
  const std::int64_t ws_bytes = b.sample_workspace_bytes(rows, logits_host.dim(1));
  Tensor ws = ws_bytes > 0 ? Tensor::empty({(ws_bytes + 7) / 8}, DType::f64, b.device()) : Tensor();
  b.sample_tokens(logits, params, top_n, tokens, lp, ids, tlp, ws);
  Sampled s;
  for (double x : tokens.to_double_vector()) s.tokens.push_back(int(x));
  for (double x : lp.to_double_vector()) s.logprobs.push_back(float(x));
  if (top_n > 0) {
    for (double x : ids.to_double_vector()) s.top_ids.push_back(int(x));
    for (double x : tlp.to_double_vector()) s.top_lp.push_back(float(x));
  }
  return s;
}

Tensor random_logits(int rows, int vocab, std::uint64_t seed, double scale, DType dtype) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(std::size_t(rows) * vocab);
  for (auto& x : v) x = float(scale) * normal(rng);
  return Tensor::from_vector({rows, vocab}, v, dtype);
}

TEST(EngineOpsCuda, SamplingMatchesTheCpuOp) {
  REQUIRE_GPU();
  auto cpu = make_cpu_backend(DType::f32);
  struct Config {
    double t;
    int k;
    double p;
  };
  const std::vector<Config> configs = {{0.0, 0, 1.0},  {1.0, 0, 1.0}, {0.8, 40, 1.0}, {1.2, 0, 0.9},
                                       {0.7, 50, 0.7}, {1.0, 1, 1.0}, {1.0, 0, 0.01}};
  for (DType dt : {DType::f32, DType::bf16}) {
    for (int vocab : {50304, 1000, 7}) {
      for (const Config& cfg : configs) {
        SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " V " << vocab << " T " << cfg.t
                                          << " k " << cfg.k << " p " << cfg.p);
        const int rows = 64;
        // Values exact in bf16, so both backends see the same logits.
        Tensor logits = random_logits(rows, vocab, vocab + rows, 3.0, dt).to_dtype(DType::f32);
        Tensor params = Tensor::empty({rows, kSampleParamWords}, DType::i32);
        for (int r = 0; r < rows; ++r) {
          const auto w = pack_sample_params(cfg.t, cfg.k, cfg.p, 99 + r, r * 7, r % 4 == 0 ? 5 : 0);
          std::copy(w.begin(), w.end(), params.data<std::int32_t>() + r * kSampleParamWords);
        }
        const Sampled c = sample_on(*cpu, logits, params, 5);
        const Sampled g = sample_on(*gpu(), logits.to_dtype(dt), params, 5);
        int same = 0;
        for (int r = 0; r < rows; ++r) {
          ASSERT_GE(g.tokens[r], 0) << "row " << r;
          same += g.tokens[r] == c.tokens[r];
          // the GPU's token is inside the CPU op's kept set
          const std::vector<float> row(logits.data<float>() + std::int64_t(r) * vocab,
                                       logits.data<float>() + std::int64_t(r + 1) * vocab);
          SamplingConfig sc;
          sc.temperature = cfg.t;
          sc.top_k = cfg.k;
          sc.top_p = float(cfg.p);
          Sampler host(sc);
          ASSERT_GT(host.distribution(row)[std::size_t(g.tokens[r])], 0.0) << "row " << r;
          // log-probability of the GPU's own token
          double m = -INFINITY, s = 0;
          for (float x : row) m = std::max(m, double(x));
          for (float x : row) s += std::exp(double(x) - m);
          EXPECT_NEAR(g.logprobs[r], row[std::size_t(g.tokens[r])] - m - std::log(s), 2e-3);
          for (int k = 0; k < 5; ++k) {
            const std::size_t i = std::size_t(r) * 5 + k;
            EXPECT_EQ(g.top_ids[i], c.top_ids[i]) << "row " << r << " top " << k;
            EXPECT_NEAR(g.top_lp[i], c.top_lp[i], 2e-3);
          }
        }
        if (cfg.t == 0) {
          EXPECT_EQ(same, rows);
        } else {
          EXPECT_GE(same, rows - 2) << "draws differing from the CPU op";
        }
      }
    }
  }
}

TEST(EngineOpsCuda, SamplingFlagsInvalidRows) {
  REQUIRE_GPU();
  Tensor logits = random_logits(3, 300, 1, 1.0, DType::f32);
  logits.data<float>()[17] = std::nanf("");
  for (int i = 300; i < 600; ++i) logits.data<float>()[i] = -std::numeric_limits<float>::infinity();
  Tensor params = Tensor::empty({3, kSampleParamWords}, DType::i32);
  for (int r = 0; r < 3; ++r) {
    const auto w = pack_sample_params(r == 2 ? 0.0 : 1.0, 0, 1.0, 1, 0, 0);
    std::copy(w.begin(), w.end(), params.data<std::int32_t>() + r * kSampleParamWords);
  }
  const Sampled g = sample_on(*gpu(), logits, params, 0);
  EXPECT_EQ(g.tokens[0], -1);
  EXPECT_EQ(g.tokens[1], -1);
  EXPECT_GE(g.tokens[2], 0);
}

// The upload with fed rows: pinned host words into device memory, runs taken from a device
// tensor, in one kernel; the same through the default path when the host side is not pinned or
// there are more runs than the kernel takes.
TEST(EngineOpsCuda, PatchedCopyTakesEachRunFromTheDevice) {
  REQUIRE_GPU();
  Backend& b = *gpu();
  const int n = 1027;  // 16-byte chunks and a tail
  Tensor src = Tensor::empty({n}, DType::i32);
  for (int i = 0; i < n; ++i) src.data<std::int32_t>()[i] = 1000 + i;
  std::vector<float> from_v(64);
  for (int i = 0; i < 64; ++i) from_v[std::size_t(i)] = float(-1 - i);
  Tensor from = Tensor::from_vector({64}, from_v, DType::i32).to(Device::cuda);
  auto check = [&](const std::vector<Backend::CopyPatch>& patches, bool pinned) {
    SCOPED_TRACE(::testing::Message() << patches.size() << " patches, pinned " << pinned);
    std::shared_ptr<void> pin = pinned ? b.pin_host(src) : nullptr;
    Tensor dst = Tensor::empty({n}, DType::i32, Device::cuda);
    b.fill(dst, 0.0);
    b.copy_async_patched(dst, src, patches, from);
    b.mark_queue()->wait();
    std::vector<int> want(n);
    for (int i = 0; i < n; ++i) want[std::size_t(i)] = 1000 + i;
    for (const auto& p : patches) {
      for (std::int64_t j = 0; j < p.count; ++j)
        want[std::size_t(p.at + j)] = int(-1 - (p.from + j));
    }
    const auto got = dst.to_double_vector();
    for (int i = 0; i < n; ++i) ASSERT_EQ(int(got[std::size_t(i)]), want[std::size_t(i)]) << i;
  };
  const std::vector<Backend::CopyPatch> few = {{0, 5, 3}, {4, 0, 1}, {1020, 40, 7}, {513, 9, 0}};
  check(few, true);
  check(few, false);
  std::vector<Backend::CopyPatch> many;
  for (int k = 0; k < 12; ++k) many.push_back({std::int64_t(k) * 80 + 1, k, 2});
  check(many, true);
  check({}, true);
  EXPECT_THROW(b.copy_async_patched(from, src.rows(0, 64), {{60, 0, 5}}, from), Error);
}

TEST(EngineOpsCuda, CapturedGraphReplaysTheEagerResult) {
  REQUIRE_GPU();
  Backend& b = *gpu();
  ASSERT_TRUE(b.supports_capture());
  PagedCase c = paged_attention_cases()[7];  // diff, GQA, split-K
  PagedInputs in = make_paged_inputs(c, 5);
  Tensor q = dev(in.q, DType::bf16), kp = dev(in.k_pool, DType::bf16),
         vp = dev(in.v_pool, DType::bf16);
  Tensor tables = in.block_tables.to(Device::cuda), lens = in.context_lens.to(Device::cuda);
  Tensor lambda = dev(in.lambda, DType::f32);
  Tensor pos = Tensor::from_vector({in.g.batch}, std::vector<float>(std::size_t(in.g.batch), 9.f),
                                   DType::i32)
                   .to(Device::cuda);
  const std::int64_t ws_bytes = b.paged_attention_workspace_bytes(in.g);
  Tensor ws = Tensor::empty({(ws_bytes + 7) / 8 + 1}, DType::f64, Device::cuda);
  b.fill(ws, 0.0);
  Tensor out =
      Tensor::empty({in.g.batch, in.g.out_heads(), in.g.v_head_dim}, DType::bf16, Device::cuda);
  Tensor q_work = q.clone();
  // the head-normed variant too (DIFF V1: its output, rstd)
  const int heads = in.g.batch * in.g.out_heads();
  Tensor gain = Tensor::empty({in.g.v_head_dim}, DType::f32, Device::cuda);
  b.fill(gain, 1.25);
  Tensor att = out.clone(), out_n = out.clone();
  Tensor rstd = Tensor::empty({heads}, DType::f32, Device::cuda);
  auto ops = [&] {
    b.rope_positions(q_work, in.g.q_row_stride, pos, in.g.q_heads, in.g.head_dim, 10000.0,
                     RopeStyle::interleaved);
    b.paged_attention_decode(in.g, q_work, kp, vp, tables, lens, lambda, out, ws);
    b.paged_attention_decode_head_norm(in.g, q_work, kp, vp, tables, lens, lambda, gain, 1e-5, 0.8,
                                       att, out_n, rstd, ws);
  };
  q_work.copy_from(q);
  ops();
  const auto eager = out.to_double_vector(), eager_n = out_n.to_double_vector(),
             eager_rstd = rstd.to_double_vector();
  b.fill(out, std::nan(""));
  b.fill(out_n, std::nan(""));
  q_work.copy_from(q);  // host-issued copies stay outside the graph
  b.begin_capture();
  ops();
  auto graph = b.end_capture();
  graph->replay();
  EXPECT_EQ(out.to_double_vector(), eager);
  EXPECT_EQ(out_n.to_double_vector(), eager_n);
  EXPECT_EQ(rstd.to_double_vector(), eager_rstd);
  // A second replay after resetting the input gives the same again.
  q_work.copy_from(q);
  b.fill(out, std::nan(""));
  b.fill(out_n, std::nan(""));
  graph->replay();
  EXPECT_EQ(out.to_double_vector(), eager);
  EXPECT_EQ(out_n.to_double_vector(), eager_n);
}

}  // namespace
}  // namespace difftx::testing
