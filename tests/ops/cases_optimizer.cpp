// Op cases of the optimizer support: sum of squares (global norm), scale_inplace (clipping)
// and AdamW.
#include <fmt/format.h>

#include <cmath>

#include "case_builders.h"
#include "op_compare.h"
#include "op_run.h"

namespace difftx::testing {

OpCase sum_of_squares_case(std::int64_t n, DType d) {
  OpCase c;
  c.name = fmt::format("sum_of_squares_{}_n{}", dtype_name(d), n);
  c.op = "sum_of_squares";
  c.inputs = {act("x", {n}).rounded_to(d == DType::bf16 ? DType::bf16 : DType::f32).on_device(d)};
  c.outputs = {stat("sum", {1}).on_device(DType::f64)};  // the f64 result, kept whole
  c.forward = [](Backend& b, const Tensors& in, Tensors& out) {
    b.fill(out[0], b.sum_of_squares(in[0]));
  };
  c.deterministic = true;  // a fixed grid, f64 partial sums added in a fixed order
  // f64 partial sums of exact squares: error ~ sqrt(n) * 2^-53 relative.
  c.check = [](const Comparison& cmp) {
    long double exact = 0;
    for (double x : cmp.given.inputs[0].to_double_vector()) exact += (long double)x * x;
    const double got = cmp.device.outputs[0].to_double_vector()[0];
    const double ref = cmp.ref.outputs[0].to_double_vector()[0];
    std::vector<std::string> failures;
    if (!(std::abs(got - double(exact)) <= 1e-12 * double(exact) + 1e-300)) {
      failures.push_back(fmt::format("sum {} vs exact {}", got, double(exact)));
    }
    if (!(std::abs(got - ref) <= 1e-12 * ref + 1e-300)) {
      failures.push_back(fmt::format("sum {} vs the CPU backend's {}", got, ref));
    }
    return failures;
  };
  return c;
}

OpCase scale_case(std::int64_t n, DType d, double factor, std::int64_t offset) {
  OpCase c;
  c.name = fmt::format("scale_inplace_{}_n{}_off{}", dtype_name(d), n, offset);
  c.op = "scale_inplace";
  c.offset = offset;
  c.inputs = {act("x", {n}).rounded_to(DType::f32).on_device(d)};
  c.outputs = {act("y", {n}).on_device(d)};
  c.forward = [factor](Backend& b, const Tensors& in, Tensors& out) {
    out[0].copy_from(in[0]);
    b.scale_inplace(out[0], factor);
  };
  return c;
}

namespace {

// param - start, each difference rounded to f32, in `dtype` (the update itself, far more
// sensitive than the parameter).
Tensor update(const Tensor& param, const Tensor& start, DType dtype) {
  const std::vector<double> p = param.to_double_vector(), s = start.to_double_vector();
  std::vector<float> delta(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) delta[i] = static_cast<float>(p[i] - s[i]);
  return Tensor::from_vector(param.shape(), delta, dtype);
}

}  // namespace

OpCase adamw_case(std::int64_t n) {
  OpCase c;
  c.name = fmt::format("adamw_n{}", n);
  c.op = "adamw";
  c.inputs = {param("grad1", {n}).rounded_to(DType::f32),
              param("grad2", {n}).normal(1e-3).rounded_to(DType::f32),
              param("grad3", {n}).rounded_to(DType::f32)};
  c.outputs = {param("param", {n}).rounded_to(DType::f32).accumulated(),
               param("m", {n}).normal(0.0).accumulated(),
               param("v", {n}).normal(0.0).accumulated()};
  c.forward = [](Backend& b, const Tensors& in, Tensors& out) {
    for (int step = 1; step <= 3; ++step) {
      b.adamw_step(out[0], in[step - 1], out[1], out[2], 1e-3, 0.9, 0.95, 1e-8, 0.1, step);
    }
  };
  c.check = [](const Comparison& cmp) {
    const Tensor& start = cmp.given.outputs[0];
    std::vector<std::string> failures;
    const std::string f =
        budget_failure("update (param - start)", update(cmp.device.outputs[0], start, DType::f32),
                       update(cmp.ref.outputs[0], start, DType::f64),
                       update(cmp.naive.outputs[0], start, DType::f64));
    if (!f.empty()) failures.push_back(f);
    return failures;
  };
  return c;
}

}  // namespace difftx::testing
