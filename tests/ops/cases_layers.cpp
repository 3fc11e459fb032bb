// Op cases of the layer ops: embedding, RMSNorm, linear, RoPE and SwiGLU.
#include <fmt/format.h>

#include "case_builders.h"
#include "op_run.h"

namespace difftx::testing {

OpCase embedding_case(int n, int vocab, int e, DType table_dtype, DType out_dtype) {
  OpCase c;
  c.name = fmt::format("embedding_n{}_v{}_e{}_table_{}_out_{}", n, vocab, e,
                       dtype_name(table_dtype), dtype_name(out_dtype));
  c.op = "embedding";
  // f32 table values: a bf16 table rounds them
  c.inputs = {ids("ids", {n}, vocab),
              param("table", {vocab, e}).rounded_to(DType::f32).on_device(table_dtype).with_grad()};
  c.outputs = {act("out", {n, e}).on_device(out_dtype).checked(Check::exact)};
  c.grads = {param("dtable", {vocab, e}).accumulated()};
  c.forward = [](Backend& b, const Tensors& in, Tensors& out) {
    b.embedding_forward(in[0], in[1], out[0]);
  };
  c.backward = [](Backend& b, const Tensors& in, const Tensors&, const Tensors& dout, Tensors& g) {
    b.embedding_backward(in[0], dout[0], g[0]);
  };
  c.deterministic = true;  // the scatter-add sums each id's rows in position order
  return c;
}

OpCase rmsnorm_case(int n, int ch, Gain gain, double scale) {
  OpCase c;
  const char* gain_name = gain == Gain::none  ? "nogain"
                          : gain == Gain::f32 ? "f32gain"
                                              : "bf16gain";
  c.name = fmt::format("rmsnorm_n{}_c{}_{}_s{}", n, ch, gain_name, static_cast<int>(scale * 10));
  c.op = "rmsnorm";
  c.inputs = {act("x", {n, ch}).normal(2.0).with_grad()};
  if (gain != Gain::none) {
    TensorSpec w = param("weight", {ch}).normal(0.3, 1.0).with_grad();
    if (gain == Gain::bf16) w.on_device(DType::bf16);
    c.inputs.push_back(w);
  }
  c.outputs = {act("out", {n, ch}), stat("rstd", {n}).outside_loss()};
  c.grads = {act("dx", {n, ch})};
  if (gain != Gain::none) c.grads.push_back(param("dweight", {ch}).accumulated());
  const bool has_gain = gain != Gain::none;
  c.forward = [has_gain, scale](Backend& b, const Tensors& in, Tensors& out) {
    b.rmsnorm_forward(in[0], has_gain ? in[1] : Tensor(), 1e-5, scale, out[0], out[1]);
  };
  c.backward = [has_gain, scale](Backend& b, const Tensors& in, const Tensors& out,
                                 const Tensors& dout, Tensors& g) {
    b.rmsnorm_backward(in[0], has_gain ? in[1] : Tensor(), out[1], scale, dout[0], g[0],
                       has_gain ? &g[1] : nullptr);
  };
  c.deterministic = true;  // dweight: per-block partial sums reduced in a fixed order
  return c;
}

OpCase linear_case(const LinearShape& s) {
  OpCase c;
  c.name = fmt::format("linear_n{}_k{}_m{}_off{}{}_{}", s.n, s.k, s.m, s.offset,
                       s.accumulate_dx ? "_accumulate" : "", dtype_name(s.act));
  c.op = "linear";
  c.offset = s.offset;
  c.inputs = {act("x", {s.n, s.k}).on_device(s.act).with_grad(),
              weight("w", {s.m, s.k}).normal(s.w_scale).on_device(s.act).with_grad()};
  c.outputs = {act("out", {s.n, s.m}).on_device(s.act)};
  TensorSpec dx = act("dx", {s.n, s.k}).on_device(s.act);
  if (s.accumulate_dx) dx.accumulated();
  c.grads = {dx, param("dw", {s.m, s.k}).normal(s.dw_start).accumulated()};
  c.forward = [](Backend& b, const Tensors& in, Tensors& out) {
    b.linear_forward(in[0], in[1], out[0]);
  };
  const bool acc = s.accumulate_dx;
  c.backward = [acc](Backend& b, const Tensors& in, const Tensors&, const Tensors& dout,
                     Tensors& g) { b.linear_backward(in[0], in[1], dout[0], g[0], g[1], acc); };
  return c;
}

namespace {

// The padding columns (past heads * d) of a (tokens, stride) tensor.
std::vector<double> padding(const Tensor& t, std::int64_t stride, std::int64_t used) {
  const std::vector<double> all = t.to_double_vector();
  std::vector<double> pad;
  for (std::size_t row = 0; row * stride < all.size(); ++row) {
    for (std::int64_t col = used; col < stride; ++col) pad.push_back(all[row * stride + col]);
  }
  return pad;
}

}  // namespace

OpCase rope_case(int batch, int seq, int heads, int d, int pad, RopeStyle style, int pos_offset) {
  OpCase c;
  c.name = fmt::format("rope_{}_b{}_t{}_h{}_d{}_pad{}_pos{}", rope_style_name(style), batch, seq,
                       heads, d, pad, pos_offset);
  c.op = "rope";
  const std::int64_t used = std::int64_t(heads) * d, stride = used + pad;
  const std::int64_t tokens = std::int64_t(batch) * seq;
  c.inputs = {act("x", {tokens, stride}).with_grad()};
  c.outputs = {act("out", {tokens, stride})};
  c.grads = {act("dx", {tokens, stride})};
  c.forward = [=](Backend& b, const Tensors& in, Tensors& out) {
    out[0].copy_from(in[0]);
    b.rope(out[0], batch, seq, heads, d, stride, pos_offset, 10000.0, style, false);
  };
  c.backward = [=](Backend& b, const Tensors&, const Tensors&, const Tensors& dout, Tensors& g) {
    g[0].copy_from(dout[0]);
    b.rope(g[0], batch, seq, heads, d, stride, pos_offset, 10000.0, style, true);
  };
  if (pad > 0) {
    // Padding columns past heads * head_dim are not touched.
    c.check = [stride, used](const Comparison& cmp) {
      std::vector<std::string> failures;
      auto compare = [&](const char* what, const Tensor& got, const Tensor& given) {
        const std::vector<double> want = padding(given, stride, used);
        const std::vector<double> have = padding(got, stride, used);
        std::int64_t moved = 0;
        for (std::size_t i = 0; i < want.size(); ++i) moved += have[i] != want[i];
        if (moved > 0) {
          failures.push_back(fmt::format("{}: {} padding elements changed", what, moved));
        }
      };
      compare("out", cmp.device.outputs[0], cmp.given.inputs[0]);
      if (!cmp.device.grads.empty()) compare("dx", cmp.device.grads[0], cmp.given.douts[0]);
      return failures;
    };
  }
  return c;
}

OpCase swiglu_case(int n, int f, double gate_scale) {
  OpCase c;
  c.name = fmt::format("swiglu_n{}_f{}", n, f);
  c.op = "swiglu";
  c.inputs = {act("gate", {n, f}).normal(gate_scale).with_grad(), act("up", {n, f}).with_grad()};
  c.outputs = {act("out", {n, f})};
  c.grads = {act("dgate", {n, f}), act("dup", {n, f})};
  c.forward = [](Backend& b, const Tensors& in, Tensors& out) {
    b.swiglu_forward(in[0], in[1], out[0]);
  };
  c.backward = [](Backend& b, const Tensors& in, const Tensors&, const Tensors& dout, Tensors& g) {
    b.swiglu_backward(in[0], in[1], dout[0], g[0], g[1]);
  };
  return c;
}

}  // namespace difftx::testing
