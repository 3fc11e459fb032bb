// Backend-ops harness on the CPU (op_cases.h): every op case's backward against central finite
// differences of its forward in fp64, and the fp32 backend against the fp64 one. Every run has
// its tensors in guard buffers, "=" outputs poisoned and "+=" outputs started from random
// values (op_run.h); damaged guards and written inputs fail the case. Also: the differential
// attention cases' own error checks accept fp32 and reject a wrong DIFF V2 gate gradient.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <random>
#include <set>

#include "difftx/cpu/cpu_backend.h"
#include "op_cases.h"
#include "op_run.h"

namespace difftx::testing {
namespace {

const std::vector<OpCase>& cases() {
  return op_cases(kCpuSuite);
}

void expect_clean(const RunResult& r, const std::string& backend) {
  for (const auto& p : r.problems) ADD_FAILURE() << backend << ": " << p;
}

// L = sum over the outputs in the loss of <dout_k, out_k>.
double objective(const OpCase& c, const Tensors& outputs, const Tensors& douts) {
  double l = 0;
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    if (!c.outputs[k].in_loss) continue;
    const auto o = outputs[k].to_double_vector();
    const auto w = douts[k].to_double_vector();
    for (std::size_t i = 0; i < o.size(); ++i) l += o[i] * w[i];
  }
  return l;
}

// The change the backward made to gradient g (its value minus its start, when accumulated).
std::vector<double> gradient(const OpCase& c, const RunResult& run, const CaseValues& v,
                             std::size_t g) {
  std::vector<double> grad = run.grads[g].to_double_vector();
  if (c.grads[g].write == Write::accumulate) {
    const std::vector<double> start = v.grads[g].to_double_vector();
    for (std::size_t i = 0; i < grad.size(); ++i) grad[i] -= start[i];
  }
  return grad;
}

class OpGradCheck : public ::testing::TestWithParam<std::size_t> {};

TEST_P(OpGradCheck, BackwardMatchesFiniteDifferencesInFp64) {
  const OpCase& c = cases()[GetParam()];
  auto backend = make_cpu_backend(DType::f64);
  Backend& b = *backend;
  const CaseValues v = draw_values(c, case_seed(1234, c.name));
  const RunResult run = run_case(c, b, v);
  expect_clean(run, "cpu-f64");

  // Forward outputs are fully written and finite.
  for (std::size_t k = 0; k < run.outputs.size(); ++k) {
    for (double x : run.outputs[k].to_double_vector()) {
      ASSERT_TRUE(std::isfinite(x)) << "output " << c.outputs[k].label;
    }
  }
  if (!c.backward) return;  // an op without a backward (fill, add, AdamW, ...)
  ASSERT_GE(c.grads.size(), c.gradient_count());

  std::size_t g = 0;
  std::mt19937_64 pick(7);
  bool reported = false;
  auto value = [&](const CaseValues& values) {
    const RunResult r = run_case(c, b, values, false);
    if (!r.problems.empty() && !reported) {
      ADD_FAILURE() << "forward at a perturbed input: " << r.problems.front();
      reported = true;
    }
    return objective(c, r.outputs, values.douts);
  };
  for (std::size_t i = 0; i < c.inputs.size(); ++i) {
    if (!c.inputs[i].has_grad) continue;
    const std::vector<double> analytic = gradient(c, run, v, g++);
    const std::int64_t n = v.inputs[i].numel();
    ASSERT_EQ(static_cast<std::int64_t>(analytic.size()), n) << c.inputs[i].label;
    const std::int64_t checks = std::min<std::int64_t>(n, 48);
    for (std::int64_t k = 0; k < checks; ++k) {
      const std::int64_t e = n <= 48 ? k : std::int64_t(pick() % std::uint64_t(n));
      const double h = 1e-5;
      CaseValues plus = v, minus = v;
      plus.inputs[i] = v.inputs[i].clone();
      minus.inputs[i] = v.inputs[i].clone();
      plus.inputs[i].data<double>()[e] += h;
      minus.inputs[i].data<double>()[e] -= h;
      const double fd = (value(plus) - value(minus)) / (2 * h);
      // fp64 central differences: truncation ~h^2, rounding ~1e-16/h; both far below 1e-7.
      EXPECT_NEAR(analytic[std::size_t(e)], fd, 1e-7 + 1e-6 * std::abs(fd))
          << "input " << c.inputs[i].label << " element " << e;
    }
  }
}

TEST_P(OpGradCheck, Fp32BackendMatchesFp64Backend) {
  const OpCase& c = cases()[GetParam()];
  auto b64 = make_cpu_backend(DType::f64);
  auto b32 = make_cpu_backend(DType::f32);
  const CaseValues v = draw_values(c, case_seed(555, c.name));
  const RunResult r64 = run_case(c, *b64, v);
  const RunResult r32 = run_case(c, *b32, v);
  expect_clean(r64, "cpu-f64");
  expect_clean(r32, "cpu-f32");
  auto compare = [](const TensorSpec& spec, const Tensor& t64, const Tensor& t32) {
    const auto a = t64.to_double_vector(), b = t32.to_double_vector();
    ASSERT_EQ(a.size(), b.size()) << spec.label;
    if (spec.check == Check::exact) {
      for (std::size_t i = 0; i < a.size(); ++i) {
        ASSERT_EQ(b[i], static_cast<double>(static_cast<float>(a[i])))
            << spec.label << " element " << i;
      }
      return;
    }
    double err = 0, ref = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      ASSERT_TRUE(std::isfinite(b[i])) << spec.label << " element " << i;
      err += (a[i] - b[i]) * (a[i] - b[i]);
      ref += a[i] * a[i];
    }
    // fp32 storage/accumulation on O(1) values: relative L2 error a few ulp (1e-7) times the
    // depth of the computation; 1e-5 leaves room while catching any real bug.
    EXPECT_LE(std::sqrt(err), 1e-5 * std::sqrt(ref) + 1e-6) << spec.label;
  };
  for (std::size_t k = 0; k < c.outputs.size(); ++k) {
    compare(c.outputs[k], r64.outputs[k], r32.outputs[k]);
  }
  ASSERT_EQ(r64.grads.size(), r32.grads.size());
  for (std::size_t g = 0; g < r64.grads.size(); ++g) {
    compare(c.grads[g], r64.grads[g], r32.grads[g]);
  }
}

std::string case_name(const ::testing::TestParamInfo<std::size_t>& info) {
  std::string n = cases()[info.param].name;
  for (auto& ch : n) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return n;
}

INSTANTIATE_TEST_SUITE_P(AllOps, OpGradCheck, ::testing::Range<std::size_t>(0, cases().size()),
                         case_name);

TEST(OpCatalogue, NamesAreUniqueAndEveryBackendOpHasACase) {
  std::set<std::string> names, ops;
  for (Suite suite : {kCpuSuite, kDeviceSuite}) {
    for (const auto& c : op_cases(suite)) {
      ops.insert(c.op);
      if (suite == kDeviceSuite && (c.suites & kCpuSuite)) continue;  // listed in both
      EXPECT_TRUE(names.insert(c.name).second) << "duplicate case name " << c.name;
    }
  }
  for (const char* op :
       {"fill", "convert", "add", "embedding", "rmsnorm", "linear", "rope", "swiglu",
        "softmax_attention", "diff_attention", "diff_v2_attention", "diff_lambda", "v2_combine",
        "cross_entropy", "sum_of_squares", "scale_inplace", "adamw"}) {
    EXPECT_TRUE(ops.count(op)) << "no case for " << op;
  }
}

// The differential attention cases' own checks (run by the device suite against the GPU) accept
// the fp32 CPU backend's results, and DIFF V2's gate-gradient check rejects the gradient of a
// plausible bug: the dot of dO with the first map's output a1 instead of the second's a2.
TEST(OpCaseChecks, AcceptTheFp32BackendAndRejectTheWrongMapInDiffV2GateGradient) {
  auto b64 = make_cpu_backend(DType::f64);
  auto b32 = make_cpu_backend(DType::f32);
  int v2_cases = 0;
  for (const OpCase& c : cases()) {
    // the checks of sums whose terms cancel (DIFF V1's dlambda, V2's gate gradient); the other
    // cases' checks compare the device against values drawn for its dtypes
    if (!c.check || (c.op != "diff_attention" && c.op != "diff_v2_attention")) continue;
    SCOPED_TRACE(c.name);
    const CaseValues v = draw_values(c, case_seed(777, c.name));
    const RunResult r64 = run_case(c, *b64, v), r32 = run_case(c, *b32, v);
    for (const auto& f : c.check(Comparison{c, v, r32, r64, r32})) ADD_FAILURE() << f;
    if (c.op != "diff_v2_attention") continue;
    ++v2_cases;
    // (nq, 2h, d) maps; (nq, h) gate logits and gradient
    const std::vector<double> att = r64.outputs[1].to_double_vector();
    const std::vector<double> dout = v.douts[0].to_double_vector();
    const std::vector<double> gate = v.inputs[3].to_double_vector();
    const std::int64_t h = r64.grads[3].dim(1), d = r64.outputs[1].dim(2);
    std::vector<float> wrong(gate.size());
    for (std::size_t e = 0; e < wrong.size(); ++e) {
      const std::int64_t r = std::int64_t(e) / h, i = std::int64_t(e) % h;
      const double sig = 1.0 / (1.0 + std::exp(-gate[e]));
      double dot = 0;
      for (std::int64_t ch = 0; ch < d; ++ch)
        dot += dout[e * d + ch] * att[(r * 2 * h + 2 * i) * d + ch];
      wrong[e] = float(-sig * (1 - sig) * dot);
    }
    RunResult bad = r32;
    bad.grads[3] = Tensor::from_vector(r32.grads[3].shape(), wrong, r32.grads[3].dtype());
    EXPECT_FALSE(c.check(Comparison{c, v, bad, r64, r32}).empty()) << "the wrong map passed";
  }
  EXPECT_GT(v2_cases, 0);
}

}  // namespace
}  // namespace difftx::testing
