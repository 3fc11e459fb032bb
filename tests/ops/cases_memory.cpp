// Op cases of the memory helpers and elementwise adds: fill, convert, add and add_inplace.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "case_builders.h"

namespace difftx::testing {

OpCase fill_case(std::int64_t n, DType d, std::int64_t offset) {
  OpCase c;
  c.name = fmt::format("fill_{}_n{}_off{}", dtype_name(d), n, offset);
  c.op = "fill";
  c.offset = offset;
  for (const char* label : {"minus_1_5", "0_3", "3"}) {
    c.outputs.push_back(act(label, {n}).on_device(d).checked(Check::exact));
  }
  c.forward = [](Backend& b, const Tensors&, Tensors& out) {
    b.fill(out[0], -1.5);
    b.fill(out[1], 0.3);
    b.fill(out[2], 3.0);
  };
  return c;
}

namespace {

// Infinities, a value that rounds to bf16 infinity, subnormals, signed zeros, exact ties (even
// down, up) and a NaN.
void plant_specials(std::vector<double>& v) {
  const float specials[] = {INFINITY, -INFINITY, 3.3961e38f, -3.3961e38f, 1e-40f,
                            -3e-39f,  0.f,       -0.f,       1.00390625f, 1.01171875f};
  for (std::size_t i = 0; i < std::size(specials) && i < v.size(); ++i) v[i] = specials[i];
  if (v.size() > 20) v[20] = std::numeric_limits<double>::quiet_NaN();
}

}  // namespace

OpCase convert_case(std::int64_t n, DType from, DType to, std::int64_t offset, bool specials) {
  OpCase c;
  c.name = fmt::format("convert_{}_to_{}_n{}_off{}{}", dtype_name(from), dtype_name(to), n, offset,
                       specials ? "_specials" : "");
  c.op = "convert";
  c.offset = offset;
  TensorSpec src = act("src", {n}).normal(10.0).rounded_to(DType::f32).on_device(from);
  if (specials) {
    src.planted(plant_specials);
    c.suites = kDeviceSuite;  // non-finite values: no finite differences
  }
  c.inputs = {src};
  c.outputs = {act("dst", {n}).on_device(to).checked(Check::exact)};
  c.forward = [](Backend& b, const Tensors& in, Tensors& out) { b.convert(in[0], out[0]); };
  return c;
}

OpCase add_case(std::int64_t n, DType d, std::int64_t offset) {
  OpCase c;
  c.name = fmt::format("add_{}_n{}_off{}", dtype_name(d), n, offset);
  c.op = "add";
  c.offset = offset;
  c.inputs = {act("a", {n}).on_device(d), act("b", {n}).on_device(d)};
  c.outputs = {act("out", {n}).on_device(d), act("acc", {n}).on_device(d)};
  c.forward = [](Backend& b, const Tensors& in, Tensors& out) {
    b.add(in[0], in[1], out[0]);
    out[1].copy_from(in[0]);
    b.add_inplace(out[1], in[1]);
  };
  return c;
}

}  // namespace difftx::testing
