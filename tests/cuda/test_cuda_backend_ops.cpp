// The CUDA backend against the CPU oracle, op by op: every case of the device suite of the
// backend-ops harness (tests/ops/op_cases.h) on fresh random inputs (seed printed; set
// DIFFTX_TEST_SEED to replay). Each case runs the same inputs (rounded once to the CUDA dtypes)
// on the CPU backend in f64 (the reference), the CPU backend in f32 (the naive implementation
// that sets the error budget) and the CUDA backend, with every tensor in a guard buffer,
// "=" outputs poisoned and "+=" outputs started from random values; then each output is checked
// by its rule (tests/ops/op_compare.h: the error budget, or exact equality), deterministic ops
// are rerun for bit-identical results, and the case's own checks run. A table of the worst
// budget use per op is printed at the end. The plain tests below cover what is not an op
// comparison: the allocator, asynchronous copies through pinned host memory, invalid ids and
// targets, argument errors.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "difftx/core/error.h"
#include "difftx/cpu/cpu_backend.h"
#include "difftx/cuda/backend/cuda_backend.h"
#include "ops/op_cases.h"
#include "ops/op_compare.h"
#include "ops/op_run.h"

namespace difftx {
namespace {

using testing::Check;
using testing::OpCase;
using testing::RunResult;

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
    std::uint64_t s;
    if (const char* env = std::getenv("DIFFTX_TEST_SEED"); env && *env) {
      s = std::uint64_t(std::strtoull(env, nullptr, 10));
    } else {
      std::random_device rd;
      s = (std::uint64_t(rd()) << 32) ^ rd();
    }
    std::printf("difftx test seed: %llu (DIFFTX_TEST_SEED=%llu replays it)\n",
                static_cast<unsigned long long>(s), static_cast<unsigned long long>(s));
    return s;
  }();
  return seed;
}

// ---- the worst budget use per op family, printed after the run (the measured errors behind
// the thresholds of op_compare.h)

struct Worst {
  double usage = -1;
  testing::BudgetStats stats;
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
    std::printf("  %-20s %11s %11s %11s %6s  %s\n", "op", "cuda", "naive", "limit", "use", "case");
    for (const auto& [op, w] : worst_by_op()) {
      std::printf("  %-20s %11.3e %11.3e %11.3e %5.0f%%  %s\n", op.c_str(), w.stats.e_device,
                  w.stats.e_naive, w.stats.limit, 100 * w.usage, w.what.c_str());
    }
    std::printf("\n");
  }
};
[[maybe_unused]] ::testing::Environment* const error_table =
    ::testing::AddGlobalTestEnvironment(new ErrorTable);

// ---- every case of the device suite

const std::vector<OpCase>& cases() {
  return testing::op_cases(testing::kDeviceSuite);
}

// One tensor of the case checked by its spec's rule.
void check_tensor(const OpCase& c, const testing::TensorSpec& spec, const std::string& what,
                  const Tensor& gpu, const Tensor& ref, const Tensor& naive) {
  std::string failure;
  if (spec.check == Check::exact) {
    failure = testing::exact_failure(what, gpu, ref);
  } else if (spec.check == Check::budget) {
    testing::BudgetStats stats;
    failure = testing::budget_failure(what, gpu, ref, naive, spec.floor, &stats);
    Worst& w = worst_by_op()[c.op];
    if (stats.limit > 0 && stats.e_device / stats.limit > w.usage) {
      w = Worst{stats.e_device / stats.limit, stats, what};
    }
  }
  if (!failure.empty()) ADD_FAILURE() << failure;
}

void expect_bit_identical(const std::string& what, const Tensor& a, const Tensor& b) {
  const std::string f = testing::equality_failure(what + " (rerun)", a, b.to_double_vector());
  if (!f.empty()) ADD_FAILURE() << f << ": not deterministic";
}

class CudaOpCase : public ::testing::TestWithParam<std::size_t> {};

TEST_P(CudaOpCase, MatchesCpuOracle) {
  Backends& be = backends();
  if (!be.gpu) GTEST_SKIP() << "no CUDA device";
  const OpCase& c = cases()[GetParam()];
  RecordProperty("seed", std::to_string(base_seed()));
  const testing::CaseValues v =
      testing::draw_values(c, testing::case_seed(base_seed(), c.name), be.gpu.get());
  const RunResult gpu = testing::run_case(c, *be.gpu, v);
  const RunResult ref = testing::run_case(c, *be.ref, v);
  const RunResult naive = testing::run_case(c, *be.naive, v);
  for (const auto* r : {&gpu, &ref, &naive}) {
    const char* who = r == &gpu ? "cuda" : r == &ref ? "cpu-f64" : "cpu-f32";
    for (const auto& p : r->problems) ADD_FAILURE() << who << ": " << p;
  }
  for (std::size_t k = 0; k < c.outputs.size(); ++k) {
    check_tensor(c, c.outputs[k], c.name + " " + c.outputs[k].label, gpu.outputs[k], ref.outputs[k],
                 naive.outputs[k]);
  }
  ASSERT_EQ(gpu.grads.size(), ref.grads.size());
  for (std::size_t g = 0; g < c.grads.size() && g < gpu.grads.size(); ++g) {
    check_tensor(c, c.grads[g], c.name + " " + c.grads[g].label, gpu.grads[g], ref.grads[g],
                 naive.grads[g]);
  }
  if (c.deterministic) {
    const RunResult again = testing::run_case(c, *be.gpu, v);
    for (std::size_t k = 0; k < c.outputs.size(); ++k) {
      expect_bit_identical(c.name + " " + c.outputs[k].label, again.outputs[k], gpu.outputs[k]);
    }
    for (std::size_t g = 0; g < gpu.grads.size(); ++g) {
      expect_bit_identical(c.name + " " + c.grads[g].label, again.grads[g], gpu.grads[g]);
    }
  }
  if (c.check) {
    for (const auto& f : c.check(testing::Comparison{c, v, gpu, ref, naive})) {
      ADD_FAILURE() << c.name << ": " << f;
    }
  }
}

std::string case_name(const ::testing::TestParamInfo<std::size_t>& info) {
  std::string n = cases()[info.param].name;
  for (auto& ch : n) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return n;
}

INSTANTIATE_TEST_SUITE_P(CudaBackend, CudaOpCase, ::testing::Range<std::size_t>(0, cases().size()),
                         case_name);

// ---- what is not an op comparison

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!backends().gpu) GTEST_SKIP() << "no CUDA device";
    rng_.seed(testing::case_seed(base_seed(),
                                 ::testing::UnitTest::GetInstance()->current_test_info()->name()));
  }
  Backend& gpu() { return *backends().gpu; }
  // n values ~ Normal(0, 1) rounded to f32.
  std::vector<float> normal(std::int64_t n) {
    std::normal_distribution<float> dist(0.f, 1.f);
    std::vector<float> v(static_cast<std::size_t>(n));
    for (auto& x : v) x = dist(rng_);
    return v;
  }
  Tensor dev(const Shape& s, const std::vector<float>& v, DType d) {
    return Tensor::from_vector(s, v, d).to(Device::cuda);
  }

 private:
  std::mt19937_64 rng_;
};

std::vector<double> as_double(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

TEST_F(CudaOps, TensorsRoundTripThroughTheAllocator) {
  // Many sizes, freed and reallocated: the caching allocator hands blocks back and the copies
  // in both directions are exact.
  for (int round = 0; round < 3; ++round) {
    std::vector<Tensor> keep;
    for (std::int64_t n : {0, 1, 5, 1000, 262145, 1 << 21}) {
      std::vector<float> v = normal(n);
      Tensor t = dev({n}, v, DType::f32);
      const std::string f =
          testing::equality_failure("round trip n=" + std::to_string(n), t, as_double(v));
      EXPECT_TRUE(f.empty()) << f;
      keep.push_back(std::move(t));
    }
  }
  Tensor z = Tensor::zeros({1001}, DType::bf16, Device::cuda);
  const std::string f = testing::equality_failure("zeros", z, std::vector<double>(1001, 0.0));
  EXPECT_TRUE(f.empty()) << f;
}

TEST_F(CudaOps, CopyAsyncMovesWordsThroughPinnedHostMemory) {
  // Host buffers pinned by pin_host (mapped: copied by a kernel) and plain ones (copy engine),
  // whole and at word offsets (16-byte and 4-byte aligned), odd lengths, device to device; the
  // words around each copied range stay as they were.
  Backend& b = gpu();
  const std::int64_t n = 5000;
  Tensor host = Tensor::empty({n}, DType::i32), plain = Tensor::empty({n}, DType::i32);
  auto pin = b.pin_host(host);
  ASSERT_NE(pin, nullptr);
  Tensor dev_a = Tensor::zeros({n}, DType::i32, Device::cuda);
  Tensor dev_b = Tensor::zeros({n}, DType::i32, Device::cuda);
  for (std::int64_t i = 0; i < n; ++i) host.data<std::int32_t>()[i] = std::int32_t(i * 7 + 1);
  for (auto [begin, end] :
       std::vector<std::pair<std::int64_t, std::int64_t>>{{0, n}, {4, 4001}, {1, 2}, {3, 1030}}) {
    SCOPED_TRACE(::testing::Message() << "rows [" << begin << ", " << end << ")");
    b.fill(dev_a, -5);
    b.copy_async(dev_a.rows(begin, end), host.rows(begin, end));   // host -> device, by kernel
    b.copy_async(dev_b.rows(begin, end), dev_a.rows(begin, end));  // device -> device
    std::fill_n(plain.data<std::int32_t>(), n, -9);
    b.copy_async(plain.rows(begin, end), dev_b.rows(begin, end));  // device -> plain host
    b.mark_queue()->wait();
    const Tensor back = dev_a.to(Device::cpu);
    for (std::int64_t i = 0; i < n; ++i) {
      const bool inside = i >= begin && i < end;
      ASSERT_EQ(back.data<std::int32_t>()[i], inside ? std::int32_t(i * 7 + 1) : -5) << i;
      ASSERT_EQ(plain.data<std::int32_t>()[i], inside ? std::int32_t(i * 7 + 1) : -9) << i;
    }
    std::fill_n(host.data<std::int32_t>(), n, 0);
    b.copy_async(host.rows(begin, end), dev_b.rows(begin, end));  // device -> pinned, by kernel
    b.mark_queue()->wait();
    for (std::int64_t i = 0; i < n; ++i) {
      const bool inside = i >= begin && i < end;
      ASSERT_EQ(host.data<std::int32_t>()[i], inside ? std::int32_t(i * 7 + 1) : 0) << i;
      host.data<std::int32_t>()[i] = std::int32_t(i * 7 + 1);
    }
  }
  EXPECT_THROW(b.pin_host(Tensor::empty({10}, DType::i32)), Error) << "under a page";
}

TEST_F(CudaOps, EmbeddingForwardMarksInvalidIdsWithNaN) {
  // The CPU backend throws on such an id; the GPU cannot afford a host check, so the row is NaN
  // and surfaces in the loss.
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
  // A table and output of one type with rows of whole 16-byte chunks take the copy kernel.
  for (const DType t : {DType::bf16, DType::f32}) {
    const std::int64_t e2 = 16;
    Tensor table2 = dev({5, e2}, normal(5 * e2), t);
    Tensor out2 = Tensor::empty({4, e2}, t, Device::cuda);
    gpu().embedding_forward(ids, table2, out2);
    const auto v2 = out2.to_double_vector(), t2 = table2.to_double_vector();
    for (std::int64_t c = 0; c < e2; ++c) {
      EXPECT_EQ(v2[std::size_t(c)], t2[std::size_t(c)]);
      EXPECT_TRUE(std::isnan(v2[std::size_t(e2 + c)]));
      EXPECT_TRUE(std::isnan(v2[std::size_t(2 * e2 + c)]));
      EXPECT_EQ(v2[std::size_t(3 * e2 + c)], t2[std::size_t(2 * e2 + c)]);
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
    Tensor host_x = Tensor::from_vector({4, 8}, normal(32), DType::f32);
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
  expect_error("adamw step 0", "adamw_step", [&] {
    Tensor p = Tensor::zeros({4}, DType::f32, Device::cuda);
    gpu().adamw_step(p, p, p, p, 1e-3, 0.9, 0.95, 1e-8, 0.0, 0);
  });
  expect_error("dlogits dtype", "cross_entropy", [&] {
    Tensor t = dev({4}, {1.f, 2.f, 3.f, 4.f}, DType::i32);
    Tensor l = Tensor::empty({4}, DType::f32, Device::cuda);
    Tensor d32 = Tensor::empty({4, 8}, DType::f32, Device::cuda);
    gpu().cross_entropy_forward_backward(x, t, 1.f, l, d32);
  });
  expect_error("attention head_dim 32", "head_dim 32", [&] {
    const AttentionGeometry g = packed_attention_geometry(1, 4, 4, 0, 2, 2, 2, 32, 32);
    Tensor q = dev({4, 64}, normal(256), DType::bf16);
    Tensor o = Tensor::empty({4, 2, 32}, DType::bf16, Device::cuda);
    Tensor lse = Tensor::empty({1, 2, 4}, DType::f32, Device::cuda);
    gpu().softmax_attention_forward(g, q, q, q, o, lse);
  });
  expect_error("attention q too small for its geometry", "softmax_attention_forward", [&] {
    const AttentionGeometry g = packed_attention_geometry(1, 4, 4, 0, 2, 2, 2, 64, 64);
    Tensor q = dev({4, 64}, normal(256), DType::bf16);  // (4, 2*64) needed
    Tensor o = Tensor::empty({4, 2, 64}, DType::bf16, Device::cuda);
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
