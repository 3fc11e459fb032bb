// The CUDA backend against the CPU oracle, op by op, on fresh random inputs (seed printed; set
// DIFFTX_TEST_SEED to replay). Every case runs the same bf16-rounded inputs through
//   - the CPU backend in f64: the reference ("truth"),
//   - the CPU backend in f32 with its outputs rounded to the CUDA output dtype: a naive bf16
//     implementation (exact inputs, f32-or-better arithmetic, one rounding of each output),
//   - the CUDA backend,
// and requires  relL2(cuda, ref) <= 2 * relL2(naive, ref) + floor,  where relL2(x, r) =
// ||x - r|| / ||r||. The naive error of a bf16 output is its unavoidable rounding error
// (~2^-9 relative); any wrong index, missing term or lost precision in an intermediate shows up
// as an error well over twice that. Floors (only binding where the naive error is ~0):
//   - bf16 outputs: 1e-4, 1/20 of bf16's half-ulp 2^-9 = 2e-3, so no real error hides under it;
//   - f32 outputs:  2e-5, what an f32 accumulation of a few thousand terms in another order
//     can differ by (~sqrt(K) * 2^-24 with K ~ 4096 gives 4e-6; 5x margin). The f32 naive is
//     computed in f64 inside the CPU backend, so its own error is one f32 rounding (~3e-8).
// Outputs are poisoned with NaN before each run and must come back finite (every element
// written); outputs sit inside guard elements that must keep their sentinel (no stray writes);
// accumulated (+=) outputs start from random values. The shared op cases of tests/ops run here
// too, then larger and odd shapes, aligned and unaligned views, aliasing and determinism.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "difftx/core/error.h"
#include "difftx/cpu/cpu_backend.h"
#include "difftx/cuda/backend/cuda_backend.h"
#include "ops/op_cases.h"

namespace difftx {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kSentinel = 1234.5;
constexpr double kFloorBf16 = 1e-4;
constexpr double kFloorF32 = 2e-5;
// Attention: the kernels round P and dS to bf16 before their products, so their error is not
// the output-rounding error of the naive model used here; test_attention_kernels checks their
// accuracy against a modelled naive bf16 attention. Here the backend's wiring of them is
// checked: 2e-2 sits well above bf16 P/dS rounding (~3e-3 relative) and far below the O(1)
// error of a wrong pointer, stride, head mapping or workspace.
constexpr double kFloorAttention = 2e-2;

// ---- backends and randomness

struct Backends {
  std::unique_ptr<Backend> gpu, ref, naive;
};

// Made once and never destroyed: CUDA handles are not released during static destruction,
// when the runtime may already be gone.
Backends& backends() {
  static Backends* b = [] {
    auto* r = new Backends;
    if (cuda_device_available()) r->gpu = make_cuda_backend(0);
    r->ref = make_cpu_backend(DType::f64);
    r->naive = make_cpu_backend(DType::f32);
    return r;
  }();
  return *b;
}

std::uint64_t base_seed() {
  static const std::uint64_t seed = [] {
    if (const char* s = std::getenv("DIFFTX_TEST_SEED"))
      return std::uint64_t(std::strtoull(s, nullptr, 10));
    std::random_device rd;
    return (std::uint64_t(rd()) << 32) ^ rd();
  }();
  static const bool printed = [] {
    std::printf("difftx test seed: %llu (DIFFTX_TEST_SEED=%llu replays it)\n",
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
    return true;
  }();
  (void)printed;
  return seed;
}

double round_to(DType d, double v) {
  switch (d) {
    case DType::bf16:
      return bf16_to_float(float_to_bf16(static_cast<float>(v)));
    case DType::f32:
      return static_cast<float>(v);
    case DType::i32:
      return static_cast<double>(static_cast<std::int32_t>(v));
    default:
      return v;
  }
}

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!backends().gpu) GTEST_SKIP() << "no CUDA device";
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    seed_ = base_seed() ^
            std::hash<std::string>{}(std::string(info->test_suite_name()) + "." + info->name());
    rng_.seed(seed_);
    RecordProperty("seed", std::to_string(base_seed()));
  }
  Backend& gpu() { return *backends().gpu; }
  Backend& ref() { return *backends().ref; }
  Backend& naive() { return *backends().naive; }

  // n values ~ Normal(offset, scale), rounded to `d` (so every backend sees the same numbers).
  std::vector<float> normal(std::int64_t n, double scale = 1.0, DType d = DType::bf16,
                            double offset = 0.0) {
    std::normal_distribution<double> dist(0.0, 1.0);
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = static_cast<float>(round_to(d, offset + scale * dist(rng_)));
    return v;
  }
  std::vector<float> ints(std::int64_t n, int lo, int hi) {
    std::uniform_int_distribution<int> dist(lo, hi);
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = static_cast<float>(dist(rng_));
    return v;
  }
  std::mt19937_64& rng() { return rng_; }

 private:
  std::uint64_t seed_ = 0;
  std::mt19937_64 rng_;
};

Tensor cpu(const Shape& s, const std::vector<float>& v, DType d) {
  return Tensor::from_vector(s, v, d);
}
Tensor dev(const Shape& s, const std::vector<float>& v, DType d) {
  return Tensor::from_vector(s, v, d).to(Device::cuda);
}
// A CPU output poisoned with NaN, or set to `init` (for += outputs).
Tensor cpu_out(Backend& b, const Shape& s, const std::vector<float>* init = nullptr) {
  if (init) return cpu(s, *init, b.param_dtype());
  Tensor t = Tensor::empty(s, b.param_dtype());
  b.fill(t, kNaN);
  return t;
}

// A CUDA tensor placed `offset` elements into a buffer whose other elements hold a sentinel;
// the tensor itself starts poisoned (NaN), or with given values.
class Guarded {
 public:
  Guarded(Backend& gpu, const Shape& shape, DType dtype, std::int64_t offset = 64)
      : offset_(offset), numel_(shape_numel(shape)), dtype_(dtype) {
    buffer_ = Tensor::empty({offset + numel_ + 67}, dtype, Device::cuda);
    gpu.fill(buffer_, kSentinel);
    view_ = buffer_.rows(offset, offset + numel_).reshape(shape);
    gpu.fill(view_, dtype == DType::i32 ? -7.0 : kNaN);
  }
  Tensor& t() { return view_; }
  void set(const std::vector<float>& v) {
    view_.copy_from(Tensor::from_vector(view_.shape(), v, dtype_));
  }
  void expect_guards_intact(const std::string& what) const {
    const auto all = buffer_.to_double_vector();
    const double s = round_to(dtype_, kSentinel);
    std::int64_t bad = 0;
    for (std::int64_t i = 0; i < std::int64_t(all.size()); ++i) {
      if ((i < offset_ || i >= offset_ + numel_) && all[std::size_t(i)] != s) ++bad;
    }
    EXPECT_EQ(bad, 0) << what << ": " << bad << " guard elements overwritten";
  }

 private:
  Tensor buffer_, view_;
  std::int64_t offset_, numel_;
  DType dtype_;
};

// The worst budget use per op family, printed after the run: how close each op came to its
// limit (the measured errors behind the thresholds above).
struct Worst {
  double usage = -1, e_gpu = 0, e_naive = 0, limit = 0;
  std::string what;
};
std::map<std::string, Worst>& worst_by_op() {
  static std::map<std::string, Worst> table;
  return table;
}

class ErrorTable : public ::testing::Environment {
 public:
  void TearDown() override {
    if (worst_by_op().empty()) return;
    std::printf("\nworst error per op (relative L2 vs f64; limit = 2 * naive + floor):\n");
    std::printf("  %-30s %11s %11s %11s %6s  %s\n", "op", "cuda", "naive", "limit", "use", "case");
    for (const auto& [op, w] : worst_by_op()) {
      std::printf("  %-30s %11.3e %11.3e %11.3e %5.0f%%  %s\n", op.c_str(), w.e_gpu, w.e_naive,
                  w.limit, 100 * w.usage, w.what.c_str());
    }
    std::printf("\n");
  }
};
[[maybe_unused]] ::testing::Environment* const error_table =
    ::testing::AddGlobalTestEnvironment(new ErrorTable);

double rel_l2(const std::vector<double>& x, const std::vector<double>& r) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - r[i]) * (x[i] - r[i]);
    den += r[i] * r[i];
  }
  return std::sqrt(num) / (den > 0 ? std::sqrt(den) : 1.0);
}

// The error budget check described at the top of this file.
void expect_budget(const std::string& what, const Tensor& gpu, const Tensor& ref,
                   const Tensor& naive, double floor = -1) {
  ASSERT_EQ(gpu.numel(), ref.numel()) << what;
  ASSERT_EQ(gpu.numel(), naive.numel()) << what;
  const auto g = gpu.to_double_vector();
  const auto r = ref.to_double_vector();
  auto n = naive.to_double_vector();
  std::int64_t bad = 0, first = -1;
  for (std::size_t i = 0; i < g.size(); ++i) {
    if (!std::isfinite(g[i])) {
      if (first < 0) first = std::int64_t(i);
      ++bad;
    }
  }
  ASSERT_EQ(bad, 0) << what << ": " << bad
                    << " non-finite outputs (unwritten or overflowed), first at " << first;
  for (auto& x : n) x = round_to(gpu.dtype(), x);
  if (floor < 0) floor = gpu.dtype() == DType::bf16 ? kFloorBf16 : kFloorF32;
  const double e_gpu = rel_l2(g, r), e_naive = rel_l2(n, r), limit = 2 * e_naive + floor;
  Worst& w = worst_by_op()[what.substr(0, what.find(' '))];
  if (e_gpu / limit > w.usage) w = Worst{e_gpu / limit, e_gpu, e_naive, limit, what};
  EXPECT_LE(e_gpu, limit) << what << ": cuda rel. L2 error " << e_gpu << ", naive "
                          << dtype_name(gpu.dtype()) << " error " << e_naive << ", floor " << floor;
}

void expect_equal_values(const std::string& what, const Tensor& gpu,
                         const std::vector<double>& want) {
  const auto g = gpu.to_double_vector();
  ASSERT_EQ(g.size(), want.size()) << what;
  std::int64_t bad = 0, first = -1;
  for (std::size_t i = 0; i < g.size(); ++i) {
    const bool same = (std::isnan(g[i]) && std::isnan(want[i])) || g[i] == want[i];
    if (!same) {
      if (first < 0) first = std::int64_t(i);
      ++bad;
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " elements differ, first at " << first
                    << (first >= 0 ? " (got " + std::to_string(g[std::size_t(first)]) + ", want " +
                                         std::to_string(want[std::size_t(first)]) + ")"
                                   : std::string());
}

std::vector<double> as_double(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// ---- the shared op cases of tests/ops (small odd shapes), forward and backward

bool is_attention_case(const std::string& name) {
  return name.find("attention") != std::string::npos;
}

// Head dim of an attention case name ("..._d64"); the CUDA kernels take 64 and 128.
int attention_head_dim(const std::string& name) {
  const auto pos = name.rfind("_d");
  return pos == std::string::npos ? 0 : std::atoi(name.c_str() + pos + 2);
}

class SharedOpCase : public CudaOps, public ::testing::WithParamInterface<int> {};

TEST_P(SharedOpCase, MatchesCpuOracle) {
  using testing::Role;
  const auto cases = testing::all_op_cases();
  const testing::OpCase& c = cases[std::size_t(GetParam())];
  const bool attention = is_attention_case(c.name);
  if (attention && attention_head_dim(c.name) != 64 && attention_head_dim(c.name) != 128) {
    GTEST_SKIP() << c.name << ": the CUDA attention kernels take head_dim 64 or 128";
  }
  const double floor = attention ? kFloorAttention : -1;
  Backend* all[3] = {&gpu(), &ref(), &naive()};

  // Inputs rounded once to the CUDA dtype of their role, then given to every backend.
  const auto host = testing::make_host_inputs(c, rng()());
  std::vector<Tensor> in[3];
  for (std::size_t i = 0; i < host.size(); ++i) {
    const Role role = c.inputs[i].role;
    const Tensor eff = role == Role::ids
                           ? host[i]
                           : host[i].to_dtype(testing::dtype_for(gpu(), role)).to_dtype(DType::f64);
    for (int b = 0; b < 3; ++b) in[b].push_back(testing::to_backend(*all[b], eff, role));
  }
  std::vector<Tensor> out[3];
  for (int b = 0; b < 3; ++b) {
    for (const auto& s : c.outputs) out[b].push_back(testing::alloc_on(*all[b], s));
    c.forward(*all[b], in[b], out[b]);
  }
  for (std::size_t k = 0; k < c.outputs.size(); ++k) {
    expect_budget(c.name + " output " + std::to_string(k), out[0][k], out[1][k], out[2][k], floor);
  }

  // Output gradients: random (rounded to the output's CUDA dtype), 1 for unit weights, 0 for
  // outputs outside the objective.
  std::vector<Tensor> dout[3];
  for (std::size_t k = 0; k < c.outputs.size(); ++k) {
    const auto& s = c.outputs[k];
    const bool in_loss = c.output_in_loss.empty() || c.output_in_loss[k];
    const DType d = testing::dtype_for(gpu(), s.role);
    std::vector<float> w = normal(shape_numel(s.shape), 1.0, d);
    for (auto& x : w) x = c.unit_output_weights ? 1.f : in_loss ? x : 0.f;
    const Tensor host_w = cpu(s.shape, w, DType::f64);
    for (int b = 0; b < 3; ++b) dout[b].push_back(testing::to_backend(*all[b], host_w, s.role));
  }
  std::vector<Tensor> grads[3];
  for (int b = 0; b < 3; ++b) grads[b] = c.backward(*all[b], in[b], out[b], dout[b]);
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (std::size_t g = 0; g < grads[0].size(); ++g) {
    expect_budget(c.name + " gradient " + std::to_string(g), grads[0][g], grads[1][g], grads[2][g],
                  floor);
  }
}

std::string case_name(const ::testing::TestParamInfo<int>& info) {
  std::string n = testing::all_op_cases()[std::size_t(info.param)].name;
  for (auto& ch : n) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return n;
}

INSTANTIATE_TEST_SUITE_P(CudaBackend, SharedOpCase,
                         ::testing::Range(0, int(testing::all_op_cases().size())), case_name);

// ---- memory helpers

TEST_F(CudaOps, FillWritesEveryElementOfEveryDtype) {
  for (DType d : {DType::f32, DType::bf16, DType::f64, DType::i32}) {
    for (std::int64_t n : {1, 7, 1001, 70001}) {
      for (double value : {-1.5, 0.3, 3.0}) {
        const std::string what = std::string("fill ") + dtype_name(d) + " n=" + std::to_string(n);
        Guarded out(gpu(), {n}, d, 3);
        gpu().fill(out.t(), value);
        const double want = d == DType::i32 ? double(std::int32_t(value)) : round_to(d, value);
        expect_equal_values(what, out.t(), std::vector<double>(std::size_t(n), want));
        out.expect_guards_intact(what);
      }
    }
  }
}

TEST_F(CudaOps, ConvertMatchesHostRounding) {
  const std::int64_t n = 4099;
  std::vector<float> v = normal(n, 10.0, DType::f32);
  // Specials: infinities, a value that rounds to bf16 infinity, subnormals, exact ties.
  const float specials[] = {INFINITY,    -INFINITY, 3.3961e38f,
                            -3.3961e38f, 1e-40f,    -3e-39f,
                            0.f,         -0.f,      1.00390625f /* tie, even down */,
                            1.01171875f /* tie, up */};
  for (std::size_t i = 0; i < std::size(specials); ++i) v[i] = specials[i];
  v[20] = std::nanf("");
  for (std::int64_t offset : {0, 1}) {  // aligned and unaligned views
    const std::string tag = " offset=" + std::to_string(offset);
    Tensor src = dev({n}, v, DType::f32);
    Guarded to_bf(gpu(), {n}, DType::bf16, offset);
    gpu().convert(src, to_bf.t());
    std::vector<double> want(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) want[i] = bf16_to_float(float_to_bf16(v[i]));
    expect_equal_values("convert f32->bf16" + tag, to_bf.t(), want);
    to_bf.expect_guards_intact("convert f32->bf16" + tag);

    Guarded back(gpu(), {n}, DType::f32, offset);
    gpu().convert(to_bf.t(), back.t());
    expect_equal_values("convert bf16->f32" + tag, back.t(), want);

    Guarded wide(gpu(), {n}, DType::f64, offset);
    gpu().convert(src, wide.t());
    expect_equal_values("convert f32->f64" + tag, wide.t(), as_double(v));
    Guarded narrow(gpu(), {n}, DType::f32, offset);
    gpu().convert(wide.t(), narrow.t());
    expect_equal_values("convert f64->f32" + tag, narrow.t(), as_double(v));
    Guarded bf_from_wide(gpu(), {n}, DType::bf16, offset);
    gpu().convert(wide.t(), bf_from_wide.t());
    expect_equal_values("convert f64->bf16" + tag, bf_from_wide.t(), want);
    Guarded same(gpu(), {n}, DType::f32, offset);
    gpu().convert(src, same.t());
    expect_equal_values("convert f32->f32" + tag, same.t(), as_double(v));
    same.expect_guards_intact("convert f32->f32" + tag);
  }
}

TEST_F(CudaOps, TensorsRoundTripThroughTheAllocator) {
  // Many sizes, freed and reallocated: the caching allocator hands blocks back and the copies
  // in both directions are exact.
  for (int round = 0; round < 3; ++round) {
    std::vector<Tensor> keep;
    for (std::int64_t n : {0, 1, 5, 1000, 262145, 1 << 21}) {
      std::vector<float> v = normal(n, 1.0, DType::f32);
      Tensor t = dev({n}, v, DType::f32);
      expect_equal_values("round trip n=" + std::to_string(n), t, as_double(v));
      keep.push_back(std::move(t));
    }
  }
  Tensor z = Tensor::zeros({1001}, DType::bf16, Device::cuda);
  expect_equal_values("zeros", z, std::vector<double>(1001, 0.0));
}

TEST_F(CudaOps, AddAndAddInplace) {
  for (DType d : {DType::bf16, DType::f32, DType::f64}) {
    for (std::int64_t n : {1, 7, 4099, 100003}) {
      for (std::int64_t offset : {64, 1}) {
        const std::string what = std::string("add ") + dtype_name(d) + " n=" + std::to_string(n) +
                                 " offset=" + std::to_string(offset);
        const auto a = normal(n, 1.0, d), b = normal(n, 1.0, d);
        Tensor ra = cpu({n}, a, DType::f64), rb = cpu({n}, b, DType::f64), ro = cpu_out(ref(), {n});
        ref().add(ra, rb, ro);
        Tensor na = cpu({n}, a, DType::f32), nb = cpu({n}, b, DType::f32),
               no = cpu_out(naive(), {n});
        naive().add(na, nb, no);
        Guarded ga(gpu(), {n}, d, offset), gb(gpu(), {n}, d, offset), go(gpu(), {n}, d, offset);
        ga.set(a);
        gb.set(b);
        gpu().add(ga.t(), gb.t(), go.t());
        expect_budget(what, go.t(), ro, no);
        go.expect_guards_intact(what);
        gpu().add_inplace(ga.t(), gb.t());
        expect_budget(what + " inplace", ga.t(), ro, no);
        ga.expect_guards_intact(what + " inplace");
      }
    }
  }
}

// ---- embedding

TEST_F(CudaOps, EmbeddingForwardGathersExactly) {
  const std::int64_t n = 515, vocab = 1001, e = 771;
  const auto ids = ints(n, 0, int(vocab) - 1);
  Tensor gids = dev({n}, ids, DType::i32);
  for (DType table_dtype : {DType::f32, DType::bf16}) {
    const auto table = normal(vocab * e, 1.0, DType::f32);  // f32 values: a bf16 table rounds them
    Tensor gtable = dev({vocab, e}, table, table_dtype);
    for (DType out_dtype : {DType::bf16, DType::f32}) {
      const std::string what = std::string("embedding table ") + dtype_name(table_dtype) + " out " +
                               dtype_name(out_dtype);
      Guarded out(gpu(), {n, e}, out_dtype);
      gpu().embedding_forward(gids, gtable, out.t());
      std::vector<double> want(std::size_t(n * e));
      for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t c = 0; c < e; ++c) {
          const double t =
              round_to(table_dtype, table[std::size_t(std::int64_t(ids[std::size_t(i)]) * e + c)]);
          want[std::size_t(i * e + c)] = round_to(out_dtype, t);
        }
      }
      expect_equal_values(what, out.t(), want);
      out.expect_guards_intact(what);
    }
  }
}

TEST_F(CudaOps, EmbeddingForwardMarksInvalidIdsWithNaN) {
  const std::int64_t e = 9;
  Tensor ids = dev({4}, {0.f, -1.f, 5.f, 2.f}, DType::i32);  // vocab 5: -1 and 5 are invalid
  Tensor table = dev({5, e}, normal(5 * e), DType::f32);
  Tensor out = Tensor::empty({4, e}, DType::bf16, Device::cuda);
  gpu().embedding_forward(ids, table, out);
  const auto v = out.to_double_vector();
  for (std::int64_t c = 0; c < e; ++c) {
    EXPECT_TRUE(std::isfinite(v[std::size_t(c)]));
    EXPECT_TRUE(std::isnan(v[std::size_t(e + c)]));
    EXPECT_TRUE(std::isnan(v[std::size_t(2 * e + c)]));
    EXPECT_TRUE(std::isfinite(v[std::size_t(3 * e + c)]));
  }
}

TEST_F(CudaOps, EmbeddingBackwardAccumulatesDeterministically) {
  // Few ids over many positions: long runs of equal ids in the sorted order.
  for (auto [n, vocab, e] : {std::tuple<std::int64_t, std::int64_t, std::int64_t>{1000, 7, 65},
                             {4099, 5003, 256},
                             {1, 3, 1}}) {
    const std::string what =
        "embedding backward n=" + std::to_string(n) + " vocab=" + std::to_string(vocab);
    const auto ids = ints(n, 0, int(vocab) - 1);
    const auto dout = normal(n * e);
    const auto init = normal(vocab * e, 1.0, DType::f32);
    Tensor rt = cpu_out(ref(), {vocab, e}, &init), nt = cpu_out(naive(), {vocab, e}, &init);
    ref().embedding_backward(cpu({n}, ids, DType::i32), cpu({n, e}, dout, DType::f64), rt);
    naive().embedding_backward(cpu({n}, ids, DType::i32), cpu({n, e}, dout, DType::f32), nt);
    Tensor gids = dev({n}, ids, DType::i32), gdout = dev({n, e}, dout, DType::bf16);
    Guarded gt(gpu(), {vocab, e}, DType::f32);
    gt.set(init);
    gpu().embedding_backward(gids, gdout, gt.t());
    expect_budget(what, gt.t(), rt, nt);
    gt.expect_guards_intact(what);
    // Same inputs again: bit-identical.
    Tensor again = dev({vocab, e}, init, DType::f32);
    gpu().embedding_backward(gids, gdout, again);
    expect_equal_values(what + " (rerun)", again, gt.t().to_double_vector());
  }
}

// ---- RMSNorm

TEST_F(CudaOps, RmsNormForwardBackward) {
  struct Case {
    std::int64_t n, c;
  };
  for (Case cs : {Case{1, 5}, Case{7, 13}, Case{33, 1024}, Case{130, 4096}, Case{3, 16384}}) {
    for (int gain = 0; gain < 3; ++gain) {  // none, f32, bf16 weight
      for (double scale : {1.0, 0.8}) {
        const std::int64_t n = cs.n, c = cs.c;
        const DType wd = gain == 2 ? DType::bf16 : DType::f32;
        const std::string what = "rmsnorm n=" + std::to_string(n) + " c=" + std::to_string(c) +
                                 (gain == 0   ? " no gain"
                                  : gain == 1 ? " f32 gain"
                                              : " bf16 gain") +
                                 " scale=" + std::to_string(scale);
        const auto x = normal(n * c, 2.0), w = normal(c, 0.3, wd, 1.0), g = normal(n * c);
        const auto dw_init = normal(c, 1.0, DType::f32);
        // Reference and naive: forward, then backward from their own rstd.
        Tensor rx = cpu({n, c}, x, DType::f64), rw = gain ? cpu({c}, w, DType::f64) : Tensor();
        Tensor ro = cpu_out(ref(), {n, c}), rr = cpu_out(ref(), {n});
        ref().rmsnorm_forward(rx, rw, 1e-5, scale, ro, rr);
        Tensor rdx = cpu_out(ref(), {n, c}), rdw = cpu_out(ref(), {c}, &dw_init);
        ref().rmsnorm_backward(rx, rw, rr, scale, cpu({n, c}, g, DType::f64), rdx,
                               gain ? &rdw : nullptr);
        Tensor nx = cpu({n, c}, x, DType::f32), nw = gain ? cpu({c}, w, DType::f32) : Tensor();
        Tensor no = cpu_out(naive(), {n, c}), nr = cpu_out(naive(), {n});
        naive().rmsnorm_forward(nx, nw, 1e-5, scale, no, nr);
        Tensor ndx = cpu_out(naive(), {n, c}), ndw = cpu_out(naive(), {c}, &dw_init);
        naive().rmsnorm_backward(nx, nw, nr, scale, cpu({n, c}, g, DType::f32), ndx,
                                 gain ? &ndw : nullptr);

        Tensor gx = dev({n, c}, x, DType::bf16), gw = gain ? dev({c}, w, wd) : Tensor();
        Guarded go(gpu(), {n, c}, DType::bf16), gr(gpu(), {n}, DType::f32);
        gpu().rmsnorm_forward(gx, gw, 1e-5, scale, go.t(), gr.t());
        expect_budget(what + " out", go.t(), ro, no);
        expect_budget(what + " rstd", gr.t(), rr, nr);
        go.expect_guards_intact(what + " out");
        gr.expect_guards_intact(what + " rstd");
        Guarded gdx(gpu(), {n, c}, DType::bf16), gdw(gpu(), {c}, DType::f32);
        gdw.set(dw_init);
        Tensor gg = dev({n, c}, g, DType::bf16);
        gpu().rmsnorm_backward(gx, gw, gr.t(), scale, gg, gdx.t(), gain ? &gdw.t() : nullptr);
        expect_budget(what + " dx", gdx.t(), rdx, ndx);
        gdx.expect_guards_intact(what + " dx");
        if (gain) {
          expect_budget(what + " dweight", gdw.t(), rdw, ndw);
          gdw.expect_guards_intact(what + " dweight");
          Tensor again = dev({c}, dw_init, DType::f32);
          Tensor dx2 = Tensor::empty({n, c}, DType::bf16, Device::cuda);
          gpu().rmsnorm_backward(gx, gw, gr.t(), scale, gg, dx2, &again);
          expect_equal_values(what + " dweight (rerun)", again, gdw.t().to_double_vector());
        }
      }
    }
  }
}

// ---- linear (cuBLASLt)

TEST_F(CudaOps, LinearForwardBackward) {
  struct Case {
    std::int64_t n, k, m, offset;
  };
  // Odd shapes; 128-byte aligned views; a view 2 bytes off alignment (cuBLASLt may have no
  // algorithm: the cublasGemmEx fallback then runs).
  for (Case cs : {Case{7, 13, 5, 64}, Case{1, 16, 3, 64}, Case{64, 128, 96, 64},
                  Case{33, 1000, 257, 64}, Case{512, 1024, 768, 64}, Case{17, 64, 40, 1}}) {
    for (bool accumulate : {false, true}) {
      const std::int64_t n = cs.n, k = cs.k, m = cs.m;
      const std::string what = "linear n=" + std::to_string(n) + " k=" + std::to_string(k) +
                               " m=" + std::to_string(m) + " offset=" + std::to_string(cs.offset) +
                               (accumulate ? " accumulate" : "");
      const auto x = normal(n * k), w = normal(m * k, 0.1), g = normal(n * m);
      const auto dx_init = normal(n * k), dw_init = normal(m * k, 1.0, DType::f32);
      Tensor ro = cpu_out(ref(), {n, m}), rdx = cpu_out(ref(), {n, k}, &dx_init),
             rdw = cpu_out(ref(), {m, k}, &dw_init);
      Tensor rx = cpu({n, k}, x, DType::f64), rw = cpu({m, k}, w, DType::f64);
      ref().linear_forward(rx, rw, ro);
      ref().linear_backward(rx, rw, cpu({n, m}, g, DType::f64), rdx, rdw, accumulate);
      Tensor no = cpu_out(naive(), {n, m}), ndx = cpu_out(naive(), {n, k}, &dx_init),
             ndw = cpu_out(naive(), {m, k}, &dw_init);
      Tensor nx = cpu({n, k}, x, DType::f32), nw = cpu({m, k}, w, DType::f32);
      naive().linear_forward(nx, nw, no);
      naive().linear_backward(nx, nw, cpu({n, m}, g, DType::f32), ndx, ndw, accumulate);

      Guarded gx(gpu(), {n, k}, DType::bf16, cs.offset), gw(gpu(), {m, k}, DType::bf16, cs.offset);
      gx.set(x);
      gw.set(w);
      Guarded go(gpu(), {n, m}, DType::bf16, cs.offset), gdx(gpu(), {n, k}, DType::bf16, cs.offset),
          gdw(gpu(), {m, k}, DType::f32, cs.offset);
      if (accumulate) gdx.set(dx_init);
      gdw.set(dw_init);
      Tensor gg = dev({n, m}, g, DType::bf16);
      gpu().linear_forward(gx.t(), gw.t(), go.t());
      gpu().linear_backward(gx.t(), gw.t(), gg, gdx.t(), gdw.t(), accumulate);
      expect_budget(what + " out", go.t(), ro, no);
      expect_budget(what + " dx", gdx.t(), rdx, ndx);
      expect_budget(what + " dw", gdw.t(), rdw, ndw);
      go.expect_guards_intact(what + " out");
      gdx.expect_guards_intact(what + " dx");
      gdw.expect_guards_intact(what + " dw");
    }
  }
}

TEST_F(CudaOps, LinearInF32) {
  const std::int64_t n = 9, k = 31, m = 17;
  const auto x = normal(n * k, 1.0, DType::f32), w = normal(m * k, 0.2, DType::f32),
             g = normal(n * m, 1.0, DType::f32);
  Tensor ro = cpu_out(ref(), {n, m}), rdx = cpu_out(ref(), {n, k}), rdw = cpu_out(ref(), {m, k});
  ref().fill(rdw, 0.0);
  ref().linear_forward(cpu({n, k}, x, DType::f64), cpu({m, k}, w, DType::f64), ro);
  ref().linear_backward(cpu({n, k}, x, DType::f64), cpu({m, k}, w, DType::f64),
                        cpu({n, m}, g, DType::f64), rdx, rdw, false);
  Tensor no = cpu_out(naive(), {n, m}), ndx = cpu_out(naive(), {n, k}),
         ndw = cpu_out(naive(), {m, k});
  naive().fill(ndw, 0.0);
  naive().linear_forward(cpu({n, k}, x, DType::f32), cpu({m, k}, w, DType::f32), no);
  naive().linear_backward(cpu({n, k}, x, DType::f32), cpu({m, k}, w, DType::f32),
                          cpu({n, m}, g, DType::f32), ndx, ndw, false);
  Tensor gx = dev({n, k}, x, DType::f32), gw = dev({m, k}, w, DType::f32);
  Guarded go(gpu(), {n, m}, DType::f32), gdx(gpu(), {n, k}, DType::f32),
      gdw(gpu(), {m, k}, DType::f32);
  gpu().fill(gdw.t(), 0.0);
  gpu().linear_forward(gx, gw, go.t());
  gpu().linear_backward(gx, gw, dev({n, m}, g, DType::f32), gdx.t(), gdw.t(), false);
  expect_budget("linear f32 out", go.t(), ro, no);
  expect_budget("linear f32 dx", gdx.t(), rdx, ndx);
  expect_budget("linear f32 dw", gdw.t(), rdw, ndw);
}

// ---- RoPE

TEST_F(CudaOps, RopeBothStylesForwardAndInverse) {
  struct Case {
    int batch, seq, heads, head_dim, pad;
  };
  for (Case cs : {Case{2, 5, 3, 8, 0}, Case{1, 33, 4, 64, 8}, Case{2, 17, 2, 128, 3}}) {
    for (RopeStyle style : {RopeStyle::interleaved, RopeStyle::half_split}) {
      for (int offset : {0, 4097, 1000000}) {
        for (bool inverse : {false, true}) {
          const std::int64_t stride = std::int64_t(cs.heads) * cs.head_dim + cs.pad;
          const std::int64_t tokens = std::int64_t(cs.batch) * cs.seq, numel = tokens * stride;
          const std::string what =
              std::string("rope ") + rope_style_name(style) + " d=" + std::to_string(cs.head_dim) +
              " offset=" + std::to_string(offset) + (inverse ? " inverse" : "");
          const auto x = normal(numel);
          Tensor rx = cpu({numel}, x, DType::f64), nx = cpu({numel}, x, DType::f32);
          ref().rope(rx, cs.batch, cs.seq, cs.heads, cs.head_dim, stride, offset, 10000.0, style,
                     inverse);
          naive().rope(nx, cs.batch, cs.seq, cs.heads, cs.head_dim, stride, offset, 10000.0, style,
                       inverse);
          Guarded gx(gpu(), {numel}, DType::bf16);
          gx.set(x);
          gpu().rope(gx.t(), cs.batch, cs.seq, cs.heads, cs.head_dim, stride, offset, 10000.0,
                     style, inverse);
          expect_budget(what, gx.t(), rx, nx);
          gx.expect_guards_intact(what);
          // Padding columns past heads * head_dim are not touched.
          const auto got = gx.t().to_double_vector();
          std::int64_t moved = 0;
          for (std::int64_t t = 0; t < tokens; ++t) {
            for (std::int64_t c = stride - cs.pad; c < stride; ++c) {
              moved += got[std::size_t(t * stride + c)] != x[std::size_t(t * stride + c)];
            }
          }
          EXPECT_EQ(moved, 0) << what << ": padding columns changed";
        }
      }
    }
  }
}

// ---- SwiGLU

TEST_F(CudaOps, SwigluForwardBackward) {
  for (std::int64_t n : {1, 1001, 65537}) {
    const std::string what = "swiglu n=" + std::to_string(n);
    const auto gate = normal(n, 4.0), up = normal(n), g = normal(n);
    Tensor ro = cpu_out(ref(), {n}), rdg = cpu_out(ref(), {n}), rdu = cpu_out(ref(), {n});
    ref().swiglu_forward(cpu({n}, gate, DType::f64), cpu({n}, up, DType::f64), ro);
    ref().swiglu_backward(cpu({n}, gate, DType::f64), cpu({n}, up, DType::f64),
                          cpu({n}, g, DType::f64), rdg, rdu);
    Tensor no = cpu_out(naive(), {n}), ndg = cpu_out(naive(), {n}), ndu = cpu_out(naive(), {n});
    naive().swiglu_forward(cpu({n}, gate, DType::f32), cpu({n}, up, DType::f32), no);
    naive().swiglu_backward(cpu({n}, gate, DType::f32), cpu({n}, up, DType::f32),
                            cpu({n}, g, DType::f32), ndg, ndu);
    Tensor ggate = dev({n}, gate, DType::bf16), gup = dev({n}, up, DType::bf16);
    Guarded go(gpu(), {n}, DType::bf16), gdg(gpu(), {n}, DType::bf16), gdu(gpu(), {n}, DType::bf16);
    gpu().swiglu_forward(ggate, gup, go.t());
    gpu().swiglu_backward(ggate, gup, dev({n}, g, DType::bf16), gdg.t(), gdu.t());
    expect_budget(what + " out", go.t(), ro, no);
    expect_budget(what + " dgate", gdg.t(), rdg, ndg);
    expect_budget(what + " dup", gdu.t(), rdu, ndu);
    go.expect_guards_intact(what + " out");
    gdg.expect_guards_intact(what + " dgate");
    gdu.expect_guards_intact(what + " dup");
  }
}

// ---- DIFF V1 lambda

TEST_F(CudaOps, DiffLambdaForwardBackward) {
  for (int d : {13, 64, 128}) {
    for (DType vd : {DType::f32, DType::bf16}) {
      const std::string what = "diff_lambda d=" + std::to_string(d) + " " + dtype_name(vd);
      std::vector<float> vec[4];
      for (auto& v : vec) v = normal(d, 0.15, vd);
      const std::vector<float> dl = normal(1, 1.0, DType::f32);
      std::vector<float> init[4];
      for (auto& v : init) v = normal(d, 1.0, DType::f32);
      auto run_cpu = [&](Backend& b, DType t, Tensor& lambda, std::vector<Tensor>& grads) {
        Tensor q1 = cpu({d}, vec[0], t), k1 = cpu({d}, vec[1], t), q2 = cpu({d}, vec[2], t),
               k2 = cpu({d}, vec[3], t);
        b.diff_lambda_forward(q1, k1, q2, k2, 0.35, lambda);
        for (int i = 0; i < 4; ++i) grads.push_back(cpu({d}, init[i], t));
        b.diff_lambda_backward(q1, k1, q2, k2, cpu({1}, dl, t), grads[0], grads[1], grads[2],
                               grads[3]);
      };
      Tensor rl = cpu_out(ref(), {1}), nl = cpu_out(naive(), {1});
      std::vector<Tensor> rg, ng;
      run_cpu(ref(), DType::f64, rl, rg);
      run_cpu(naive(), DType::f32, nl, ng);
      Tensor q1 = dev({d}, vec[0], vd), k1 = dev({d}, vec[1], vd), q2 = dev({d}, vec[2], vd),
             k2 = dev({d}, vec[3], vd);
      Guarded gl(gpu(), {1}, DType::f32);
      gpu().diff_lambda_forward(q1, k1, q2, k2, 0.35, gl.t());
      expect_budget(what + " lambda", gl.t(), rl, nl);
      gl.expect_guards_intact(what + " lambda");
      std::vector<Guarded> gg;
      for (int i = 0; i < 4; ++i) {
        gg.emplace_back(gpu(), Shape{d}, DType::f32);
        gg.back().set(init[i]);
      }
      gpu().diff_lambda_backward(q1, k1, q2, k2, dev({1}, dl, DType::f32), gg[0].t(), gg[1].t(),
                                 gg[2].t(), gg[3].t());
      for (int i = 0; i < 4; ++i) {
        expect_budget(what + " grad " + std::to_string(i), gg[std::size_t(i)].t(),
                      rg[std::size_t(i)], ng[std::size_t(i)]);
        gg[std::size_t(i)].expect_guards_intact(what + " grad " + std::to_string(i));
      }
    }
  }
}

// ---- DIFF V2 combine

TEST_F(CudaOps, V2CombineForwardBackward) {
  struct Case {
    std::int64_t n;
    int h, d;
  };
  for (Case cs : {Case{7, 3, 13}, Case{64, 4, 64}, Case{5, 16, 128}}) {
    const std::int64_t n = cs.n, h = cs.h, d = cs.d;
    const std::string what =
        "v2_combine n=" + std::to_string(n) + " h=" + std::to_string(h) + " d=" + std::to_string(d);
    const auto a = normal(n * 2 * h * d), gate = normal(n * h, 2.0), g = normal(n * h * d);
    Tensor ro = cpu_out(ref(), {n, h, d}), rda = cpu_out(ref(), {n, 2 * h, d}),
           rdg = cpu_out(ref(), {n, h});
    ref().v2_combine_forward(cpu({n, 2 * h, d}, a, DType::f64), cpu({n, h}, gate, DType::f64), ro);
    ref().v2_combine_backward(cpu({n, 2 * h, d}, a, DType::f64), cpu({n, h}, gate, DType::f64),
                              cpu({n, h, d}, g, DType::f64), rda, rdg);
    Tensor no = cpu_out(naive(), {n, h, d}), nda = cpu_out(naive(), {n, 2 * h, d}),
           ndg = cpu_out(naive(), {n, h});
    naive().v2_combine_forward(cpu({n, 2 * h, d}, a, DType::f32), cpu({n, h}, gate, DType::f32),
                               no);
    naive().v2_combine_backward(cpu({n, 2 * h, d}, a, DType::f32), cpu({n, h}, gate, DType::f32),
                                cpu({n, h, d}, g, DType::f32), nda, ndg);
    Tensor ga = dev({n, 2 * h, d}, a, DType::bf16), ggate = dev({n, h}, gate, DType::bf16);
    Guarded go(gpu(), {n, h, d}, DType::bf16), gda(gpu(), {n, 2 * h, d}, DType::bf16),
        gdg(gpu(), {n, h}, DType::bf16);
    gpu().v2_combine_forward(ga, ggate, go.t());
    gpu().v2_combine_backward(ga, ggate, dev({n, h, d}, g, DType::bf16), gda.t(), gdg.t());
    expect_budget(what + " out", go.t(), ro, no);
    expect_budget(what + " da", gda.t(), rda, nda);
    expect_budget(what + " dgate", gdg.t(), rdg, ndg);
    go.expect_guards_intact(what + " out");
    gda.expect_guards_intact(what + " da");
    gdg.expect_guards_intact(what + " dgate");
  }
}

// ---- fused cross-entropy

TEST_F(CudaOps, CrossEntropyFusedWithSoftmax) {
  struct Case {
    std::int64_t n, vocab;
    DType dtype;
  };
  // 32000 and 128256 take the 16-byte path; 1001 and 50257 the element path.
  for (Case cs :
       {Case{7, 1001, DType::bf16}, Case{16, 32000, DType::bf16}, Case{5, 50257, DType::bf16},
        Case{3, 128256, DType::bf16}, Case{6, 1000, DType::f32}}) {
    for (bool alias : {false, true}) {
      const std::int64_t n = cs.n, v = cs.vocab;
      const std::string what = "cross_entropy n=" + std::to_string(n) + " V=" + std::to_string(v) +
                               " " + dtype_name(cs.dtype) + (alias ? " aliased" : "");
      const auto logits = normal(n * v, 3.0, cs.dtype);
      auto targets = ints(n, 0, int(v) - 1);
      targets[1] = -1;  // ignored rows: loss 0, gradient 0
      if (n > 4) targets[4] = -100;
      const float scale = 1.0f / float(n);
      Tensor rl = cpu_out(ref(), {n}), rd = cpu_out(ref(), {n, v});
      ref().cross_entropy_forward_backward(cpu({n, v}, logits, DType::f64),
                                           cpu({n}, targets, DType::i32), scale, rl, rd);
      Tensor nl = cpu_out(naive(), {n}), nd = cpu_out(naive(), {n, v});
      naive().cross_entropy_forward_backward(cpu({n, v}, logits, DType::f32),
                                             cpu({n}, targets, DType::i32), scale, nl, nd);

      Tensor gt = dev({n}, targets, DType::i32);
      Guarded glogits(gpu(), {n, v}, cs.dtype), gl(gpu(), {n}, DType::f32),
          gfwd(gpu(), {n}, DType::f32);
      glogits.set(logits);
      gpu().cross_entropy_forward(glogits.t(), gt, gfwd.t());
      expect_budget(what + " forward losses", gfwd.t(), rl, nl);
      gfwd.expect_guards_intact(what + " forward losses");
      if (alias) {
        gpu().cross_entropy_forward_backward(glogits.t(), gt, scale, gl.t(), glogits.t());
        expect_budget(what + " dlogits", glogits.t(), rd, nd);
        glogits.expect_guards_intact(what + " dlogits");
      } else {
        Guarded gd(gpu(), {n, v}, cs.dtype);
        gpu().cross_entropy_forward_backward(glogits.t(), gt, scale, gl.t(), gd.t());
        expect_budget(what + " dlogits", gd.t(), rd, nd);
        gd.expect_guards_intact(what + " dlogits");
        expect_equal_values(what + " logits untouched", glogits.t(), as_double(logits));
      }
      expect_budget(what + " losses", gl.t(), rl, nl);
      gl.expect_guards_intact(what + " losses");
      // The forward-only losses are the forward-backward ones, bit for bit.
      expect_equal_values(what + " forward = forward_backward losses", gfwd.t(),
                          gl.t().to_double_vector());
    }
  }
}

TEST_F(CudaOps, CrossEntropyTargetOutsideVocabularyGivesNaN) {
  // The CPU backend throws on such a target; the GPU cannot afford a host check, so the loss of
  // that row is NaN and surfaces in the reduced loss.
  Tensor logits = dev({2, 10}, normal(20), DType::bf16);
  Tensor targets = dev({2}, {3.f, 10.f}, DType::i32);
  Tensor losses = Tensor::empty({2}, DType::f32, Device::cuda);
  gpu().cross_entropy_forward(logits, targets, losses);
  const auto l = losses.to_double_vector();
  EXPECT_TRUE(std::isfinite(l[0]));
  EXPECT_TRUE(std::isnan(l[1]));
}

// ---- optimizer support

TEST_F(CudaOps, SumOfSquaresIsExactInF64AndDeterministic) {
  for (DType d : {DType::f32, DType::bf16, DType::f64}) {
    for (std::int64_t n : {0, 1, 1001, 3000001}) {
      const std::string what =
          std::string("sum_of_squares ") + dtype_name(d) + " n=" + std::to_string(n);
      const auto v = normal(n, 1.0, d == DType::bf16 ? DType::bf16 : DType::f32);
      long double exact = 0;
      for (float x : v) exact += static_cast<long double>(x) * x;
      Tensor t = dev({n}, v, d);
      const double got = gpu().sum_of_squares(t);
      // f64 partial sums of exact squares: error ~ sqrt(n) * 2^-53 relative.
      EXPECT_NEAR(got, double(exact), 1e-12 * double(exact) + 1e-300) << what;
      EXPECT_EQ(got, gpu().sum_of_squares(t)) << what << ": not deterministic";
      const double r = ref().sum_of_squares(cpu({n}, v, DType::f64));
      EXPECT_NEAR(got, r, 1e-12 * r + 1e-300) << what << " vs the CPU backend";
    }
  }
}

TEST_F(CudaOps, ScaleInplace) {
  for (DType d : {DType::f32, DType::bf16, DType::f64}) {
    const std::int64_t n = 70001;
    const std::string what = std::string("scale_inplace ") + dtype_name(d);
    const auto v = normal(n, 1.0, d == DType::f64 ? DType::f32 : d);
    Tensor r = cpu({n}, v, DType::f64), nv = cpu({n}, v, DType::f32);
    ref().scale_inplace(r, 0.37);
    naive().scale_inplace(nv, 0.37);
    Guarded g(gpu(), {n}, d, 5);
    g.set(v);
    gpu().scale_inplace(g.t(), 0.37);
    expect_budget(what, g.t(), r, nv);
    g.expect_guards_intact(what);
  }
}

TEST_F(CudaOps, AdamWMatchesCpuOverSeveralSteps) {
  for (std::int64_t n : {1, 1001, 100003}) {
    const std::string what = "adamw n=" + std::to_string(n);
    const auto p0 = normal(n, 1.0, DType::f32);
    const std::vector<float> zeros(std::size_t(n), 0.f);
    Tensor rp = cpu({n}, p0, DType::f64), rm = cpu({n}, zeros, DType::f64),
           rv = cpu({n}, zeros, DType::f64);
    Tensor np = cpu({n}, p0, DType::f32), nm = cpu({n}, zeros, DType::f32),
           nv = cpu({n}, zeros, DType::f32);
    Guarded gp(gpu(), {n}, DType::f32), gm(gpu(), {n}, DType::f32), gv(gpu(), {n}, DType::f32);
    gp.set(p0);
    gm.set(zeros);
    gv.set(zeros);
    for (int step = 1; step <= 3; ++step) {
      const auto grad = normal(n, step == 2 ? 1e-3 : 1.0, DType::f32);
      ref().adamw_step(rp, cpu({n}, grad, DType::f64), rm, rv, 1e-3, 0.9, 0.95, 1e-8, 0.1, step);
      naive().adamw_step(np, cpu({n}, grad, DType::f32), nm, nv, 1e-3, 0.9, 0.95, 1e-8, 0.1, step);
      gpu().adamw_step(gp.t(), dev({n}, grad, DType::f32), gm.t(), gv.t(), 1e-3, 0.9, 0.95, 1e-8,
                       0.1, step);
    }
    expect_budget(what + " param", gp.t(), rp, np);
    expect_budget(what + " m", gm.t(), rm, nm);
    expect_budget(what + " v", gv.t(), rv, nv);
    // The update itself (param - p0), far more sensitive than the parameter.
    auto delta = [&](const Tensor& p) {
      auto v = p.to_double_vector();
      for (std::size_t i = 0; i < v.size(); ++i) v[i] -= p0[i];
      return cpu({n}, std::vector<float>(v.begin(), v.end()), DType::f64);
    };
    expect_budget(what + " update", delta(gp.t()).to_dtype(DType::f32), delta(rp), delta(np));
    gp.expect_guards_intact(what + " param");
    gm.expect_guards_intact(what + " m");
    gv.expect_guards_intact(what + " v");
  }
}

// ---- attention entries (the kernels' accuracy is test_attention_kernels' business)


TEST_F(CudaOps, AttentionEntriesDriveTheFusedKernels) {
  struct Case {
    bool diff;
    int batch, seq, kv_len, offset, heads, kv_heads;
  };
  // heads: softmax query heads / DIFF V1 differential heads; d = 64.
  for (Case cs : {Case{false, 2, 37, 37, 0, 4, 2}, Case{false, 1, 5, 70, 65, 2, 1},
                  Case{true, 2, 37, 37, 0, 2, 1}, Case{true, 1, 3, 40, 37, 2, 2}}) {
    const int d = 64;
    const AttentionGeometry g =
        cs.diff ? packed_attention_geometry(cs.batch, cs.seq, cs.kv_len, cs.offset, 2 * cs.heads,
                                2 * cs.kv_heads, cs.kv_heads, d, 2 * d)
                : packed_attention_geometry(cs.batch, cs.seq, cs.kv_len, cs.offset, cs.heads, cs.kv_heads,
                                cs.kv_heads, d, d);
    const std::string what = std::string(cs.diff ? "diff" : "softmax") +
                             "_attention T=" + std::to_string(cs.seq) +
                             " S=" + std::to_string(cs.kv_len);
    const std::int64_t nq = std::int64_t(g.batch) * g.q_len, nk = std::int64_t(g.batch) * g.kv_len;
    const Shape qs{nq, g.q_row_stride}, ks{nk, g.kv_row_stride_k}, vs{nk, g.kv_row_stride_v};
    const std::int64_t out_heads = cs.diff ? g.q_heads / 2 : g.q_heads;
    const Shape os{nq, out_heads, g.v_head_dim}, ls{g.batch, g.q_heads, g.q_len};
    const auto q = normal(shape_numel(qs)), k = normal(shape_numel(ks)),
               v = normal(shape_numel(vs));
    const auto dout = normal(shape_numel(os));
    const std::vector<float> lambda{0.4f};

    struct Result {
      Tensor out, out2, lse, dq, dk, dv, dlambda;
    };
    auto run = [&](Backend& b, DType act, auto make) {
      Result r;
      Tensor tq = make(qs, q, act), tk = make(ks, k, act), tv = make(vs, v, act);
      Tensor tl = make(Shape{1}, lambda, b.param_dtype());
      auto poisoned = [&](const Shape& s, DType t) {
        Tensor x = Tensor::empty(s, t, b.device());
        b.fill(x, kNaN);
        return x;
      };
      r.out = poisoned(os, act);
      r.lse = poisoned(ls, b.param_dtype());
      r.dq = poisoned(qs, act);
      r.dk = poisoned(ks, act);
      r.dv = poisoned(vs, act);
      Tensor td = make(os, dout, act);
      if (cs.diff) {
        r.out2 = poisoned(os, act);
        r.dlambda = make(Shape{1}, std::vector<float>{0.25f}, b.param_dtype());
        b.diff_attention_forward(g, tq, tk, tv, tl, r.out, r.out2, r.lse);
        b.diff_attention_backward(g, tq, tk, tv, tl, r.out, r.out2, r.lse, td, r.dq, r.dk, r.dv,
                                  r.dlambda);
      } else {
        b.softmax_attention_forward(g, tq, tk, tv, r.out, r.lse);
        b.softmax_attention_backward(g, tq, tk, tv, r.out, r.lse, td, r.dq, r.dk, r.dv);
      }
      return r;
    };
    auto host = [](const Shape& s, const std::vector<float>& x, DType t) { return cpu(s, x, t); };
    auto device = [](const Shape& s, const std::vector<float>& x, DType t) { return dev(s, x, t); };
    const Result r = run(ref(), DType::f64, host);
    const Result nv = run(naive(), DType::f32, host);
    const Result gr = run(gpu(), DType::bf16, device);
    expect_budget(what + " out", gr.out, r.out, nv.out, kFloorAttention);
    expect_budget(what + " lse", gr.lse, r.lse, nv.lse, kFloorF32);
    expect_budget(what + " dq", gr.dq, r.dq, nv.dq, kFloorAttention);
    expect_budget(what + " dk", gr.dk, r.dk, nv.dk, kFloorAttention);
    expect_budget(what + " dv", gr.dv, r.dv, nv.dv, kFloorAttention);
    if (cs.diff) {
      expect_budget(what + " out2", gr.out2, r.out2, nv.out2, kFloorAttention);
      // dlambda = 0.25 - sum(out2 . dO) over every element: the sum cancels, so its error is
      // bounded by the sum of the absolute terms, not by |dlambda|. The CUDA inputs out2 and dO
      // are bf16 (2^-9 relative each); allow 2^-7 of sum |out2 . dO|.
      const auto o2 = r.out2.to_double_vector();
      double abs_terms = 0;
      for (std::size_t i = 0; i < o2.size(); ++i) abs_terms += std::abs(o2[i] * double(dout[i]));
      const double got = gr.dlambda.to_double_vector()[0], want = r.dlambda.to_double_vector()[0];
      ASSERT_TRUE(std::isfinite(got)) << what << " dlambda";
      EXPECT_LE(std::abs(got - want), std::ldexp(abs_terms, -7))
          << what << " dlambda: cuda " << got << ", reference " << want << ", sum |terms| " << abs_terms;
    }
  }
}

// ---- argument checks: bad calls throw difftx::Error naming the op

TEST_F(CudaOps, BadArgumentsThrowNamedErrors) {
  Tensor x = dev({4, 8}, normal(32), DType::bf16);
  Tensor w32 = dev({3, 8}, normal(24), DType::f32);
  Tensor out = Tensor::empty({4, 3}, DType::bf16, Device::cuda);
  auto expect_error = [](const std::string& what, const std::string& needle, auto&& call) {
    try {
      call();
      ADD_FAILURE() << what << ": no error thrown";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << what << ": " << e.what();
    }
  };
  expect_error("f32 weight with bf16 input", "linear_forward",
               [&] { gpu().linear_forward(x, w32, out); });
  expect_error("host tensor", "rmsnorm_forward", [&] {
    Tensor host_x = cpu({4, 8}, normal(32), DType::f32);
    Tensor rstd = Tensor::empty({4}, DType::f32, Device::cuda);
    gpu().rmsnorm_forward(host_x, Tensor(), 1e-5, 1.0, out, rstd);
  });
  expect_error("add of mismatched sizes", "add", [&] { gpu().add(x, out, out); });
  expect_error("odd rope head_dim", "rope",
               [&] { gpu().rope(x, 1, 4, 1, 7, 8, 0, 1e4, RopeStyle::interleaved, false); });
  expect_error("bf16 adamw parameter", "adamw_step", [&] {
    Tensor g = Tensor::empty({4, 8}, DType::f32, Device::cuda);
    gpu().adamw_step(x, g, g, g, 1e-3, 0.9, 0.95, 1e-8, 0.0, 1);
  });
  expect_error("dlogits dtype", "cross_entropy", [&] {
    Tensor t = dev({4}, {1.f, 2.f, 3.f, 4.f}, DType::i32);
    Tensor l = Tensor::empty({4}, DType::f32, Device::cuda);
    Tensor d32 = Tensor::empty({4, 8}, DType::f32, Device::cuda);
    gpu().cross_entropy_forward_backward(x, t, 1.f, l, d32);
  });
  expect_error("attention head_dim 32", "", [&] {
    const AttentionGeometry g = packed_attention_geometry(1, 4, 4, 0, 2, 2, 2, 32, 32);
    Tensor q = dev({4, 64}, normal(256), DType::bf16);
    Tensor o = Tensor::empty({4, 2, 32}, DType::bf16, Device::cuda);
    Tensor lse = Tensor::empty({1, 2, 4}, DType::f32, Device::cuda);
    gpu().softmax_attention_forward(g, q, q, q, o, lse);
  });
}

TEST_F(CudaOps, BackendDescribesItself) {
  EXPECT_EQ(gpu().device(), Device::cuda);
  EXPECT_EQ(gpu().act_dtype(), DType::bf16);
  EXPECT_EQ(gpu().param_dtype(), DType::f32);
  gpu().synchronize();
}

}  // namespace
}  // namespace difftx
