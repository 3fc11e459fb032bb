// Backend-ops harness on the CPU: every op case's backward against central finite differences
// of its forward in fp64, and the fp32 backend against the fp64 one.
#include <gtest/gtest.h>

#include <cmath>

#include "difftx/cpu/cpu_backend.h"
#include "op_cases.h"

namespace difftx::testing {
namespace {

struct Objective {
  const OpCase& c;
  Backend& b;
  std::vector<Tensor> weights;  // one per output (host f64), undefined if not in the loss

  bool in_loss(std::size_t k) const { return c.output_in_loss.empty() || c.output_in_loss[k]; }

  std::vector<Tensor> run(const std::vector<Tensor>& host_in) const {
    std::vector<Tensor> in, out;
    for (std::size_t i = 0; i < host_in.size(); ++i) in.push_back(to_backend(b, host_in[i], c.inputs[i].role));
    for (const auto& s : c.outputs) out.push_back(alloc_on(b, s));
    c.forward(b, in, out);
    return out;
  }

  double value(const std::vector<Tensor>& host_in) const {
    auto out = run(host_in);
    double l = 0;
    for (std::size_t k = 0; k < out.size(); ++k) {
      if (!in_loss(k)) continue;
      auto o = out[k].to_double_vector();
      auto w = weights[k].to_double_vector();
      for (std::size_t i = 0; i < o.size(); ++i) l += o[i] * w[i];
    }
    return l;
  }
};

std::vector<Tensor> output_weights(const OpCase& c, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  std::vector<Tensor> w;
  for (const auto& s : c.outputs) {
    Tensor t = Tensor::empty(s.shape, DType::f64);
    for (std::int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = c.unit_output_weights ? 1.0 : dist(rng);
    w.push_back(t);
  }
  return w;
}

class OpGradCheck : public ::testing::TestWithParam<std::size_t> {};

TEST_P(OpGradCheck, BackwardMatchesFiniteDifferencesInFp64) {
  const auto cases = all_op_cases();
  const OpCase& c = cases[GetParam()];
  SCOPED_TRACE(c.name);
  auto backend = make_cpu_backend(DType::f64);
  Backend& b = *backend;
  auto host_in = make_host_inputs(c, 1234 + GetParam());
  Objective obj{c, b, output_weights(c, 99 + GetParam())};

  // Forward outputs are fully written and finite.
  auto out = obj.run(host_in);
  for (std::size_t k = 0; k < out.size(); ++k) {
    for (double x : out[k].to_double_vector()) ASSERT_TRUE(std::isfinite(x)) << "output " << k;
  }
  std::vector<Tensor> in;
  for (std::size_t i = 0; i < host_in.size(); ++i) in.push_back(to_backend(b, host_in[i], c.inputs[i].role));
  std::vector<Tensor> dout;
  for (std::size_t k = 0; k < out.size(); ++k) dout.push_back(to_backend(b, obj.weights[k], c.outputs[k].role));
  auto grads = c.backward(b, in, out, dout);

  std::size_t g = 0;
  std::mt19937_64 pick(7);
  for (std::size_t i = 0; i < c.inputs.size(); ++i) {
    if (!c.inputs[i].differentiable) continue;
    ASSERT_LT(g, grads.size());
    auto analytic = grads[g++].to_double_vector();
    ASSERT_EQ(static_cast<std::int64_t>(analytic.size()), host_in[i].numel());
    const std::int64_t n = host_in[i].numel();
    const std::int64_t checks = std::min<std::int64_t>(n, 48);
    for (std::int64_t k = 0; k < checks; ++k) {
      const std::int64_t e = n <= 48 ? k : std::int64_t(pick() % std::uint64_t(n));
      const double h = 1e-5;
      auto plus = host_in, minus = host_in;
      plus[i] = host_in[i].clone();
      minus[i] = host_in[i].clone();
      plus[i].data<double>()[e] += h;
      minus[i].data<double>()[e] -= h;
      const double fd = (obj.value(plus) - obj.value(minus)) / (2 * h);
      // fp64 central differences: truncation ~h^2, rounding ~1e-16/h; both far below 1e-7.
      EXPECT_NEAR(analytic[e], fd, 1e-7 + 1e-6 * std::abs(fd))
          << "input " << i << " element " << e;
    }
  }
  EXPECT_EQ(g, grads.size());
}

TEST_P(OpGradCheck, Fp32BackendMatchesFp64Backend) {
  const auto cases = all_op_cases();
  const OpCase& c = cases[GetParam()];
  SCOPED_TRACE(c.name);
  auto b64 = make_cpu_backend(DType::f64);
  auto b32 = make_cpu_backend(DType::f32);
  auto host_in = make_host_inputs(c, 555 + GetParam());
  auto weights = output_weights(c, 77);
  auto run_all = [&](Backend& b) {
    std::vector<Tensor> in, out, dout;
    for (std::size_t i = 0; i < host_in.size(); ++i) in.push_back(to_backend(b, host_in[i], c.inputs[i].role));
    for (const auto& s : c.outputs) out.push_back(alloc_on(b, s));
    c.forward(b, in, out);
    for (std::size_t k = 0; k < out.size(); ++k) dout.push_back(to_backend(b, weights[k], c.outputs[k].role));
    auto grads = c.backward(b, in, out, dout);
    out.insert(out.end(), grads.begin(), grads.end());
    return out;
  };
  auto r64 = run_all(*b64);
  auto r32 = run_all(*b32);
  ASSERT_EQ(r64.size(), r32.size());
  for (std::size_t k = 0; k < r64.size(); ++k) {
    auto a = r64[k].to_double_vector(), b = r32[k].to_double_vector();
    double err = 0, ref = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      ASSERT_TRUE(std::isfinite(b[i])) << "tensor " << k << " element " << i;
      err += (a[i] - b[i]) * (a[i] - b[i]);
      ref += a[i] * a[i];
    }
    // fp32 storage/accumulation on O(1) values: relative L2 error a few ulp (1e-7) times the
    // depth of the computation; 1e-5 leaves room while catching any real bug.
    EXPECT_LE(std::sqrt(err), 1e-5 * std::sqrt(ref) + 1e-6) << "tensor " << k;
  }
}

INSTANTIATE_TEST_SUITE_P(AllOps, OpGradCheck, ::testing::Range<std::size_t>(0, all_op_cases().size()),
                         [](const auto& info) { return all_op_cases()[info.param].name; });

}  // namespace
}  // namespace difftx::testing
