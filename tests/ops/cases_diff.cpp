// Op cases of the DIFF ops outside attention: the DIFF V1 lambda and the DIFF V2 combine.
#include <fmt/format.h>

#include "case_builders.h"

namespace difftx::testing {

OpCase diff_lambda_case(int d, DType vector_dtype, double lambda_init, double scale) {
  OpCase c;
  c.name = fmt::format("diff_lambda_d{}_{}", d, dtype_name(vector_dtype));
  c.op = "diff_lambda";
  for (const char* label : {"lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"}) {
    c.inputs.push_back(param(label, {d}).normal(scale).on_device(vector_dtype).with_grad());
    c.grads.push_back(param(std::string("d") + label, {d}).accumulated());
  }
  c.outputs = {stat("lambda", {1})};
  c.forward = [lambda_init](Backend& b, const Tensors& in, Tensors& out) {
    b.diff_lambda_forward(in[0], in[1], in[2], in[3], lambda_init, out[0]);
  };
  c.backward = [](Backend& b, const Tensors& in, const Tensors&, const Tensors& dout, Tensors& g) {
    b.diff_lambda_backward(in[0], in[1], in[2], in[3], dout[0], g[0], g[1], g[2], g[3]);
  };
  return c;
}

OpCase v2_combine_case(int n, int h, int d) {
  OpCase c;
  c.name = fmt::format("v2_combine_n{}_h{}_d{}", n, h, d);
  c.op = "v2_combine";
  c.inputs = {act("a", {n, 2 * h, d}).with_grad(),
              act("gate_logits", {n, h}).normal(2.0).with_grad()};
  c.outputs = {act("out", {n, h, d})};
  c.grads = {act("da", {n, 2 * h, d}), act("dgate_logits", {n, h})};
  c.forward = [](Backend& b, const Tensors& in, Tensors& out) {
    b.v2_combine_forward(in[0], in[1], out[0]);
  };
  c.backward = [](Backend& b, const Tensors& in, const Tensors&, const Tensors& dout, Tensors& g) {
    b.v2_combine_backward(in[0], in[1], dout[0], g[0], g[1]);
  };
  return c;
}

}  // namespace difftx::testing
