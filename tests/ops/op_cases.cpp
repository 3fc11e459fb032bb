// The op cases of the backend-ops harness (see op_cases.h): one or more per Backend op.
#include "op_cases.h"

#include <cmath>

namespace difftx::testing {

DType dtype_for(const Backend& b, Role role) {
  switch (role) {
    case Role::act:
    case Role::weight: return b.act_dtype();
    case Role::param:
    case Role::stat: return b.param_dtype();
    case Role::ids: return DType::i32;
  }
  return DType::f32;
}

Tensor alloc_on(Backend& b, const TensorSpec& spec) {
  Tensor t = Tensor::empty(spec.shape, dtype_for(b, spec.role), b.device());
  if (spec.role != Role::ids) b.fill(t, std::nan(""));  // poison: every element must be written
  return t;
}

Tensor to_backend(Backend& b, const Tensor& host, Role role) {
  Tensor typed = host.to_dtype(dtype_for(b, role));
  return b.device() == Device::cpu ? typed : typed.to(b.device());
}

std::vector<Tensor> make_host_inputs(const OpCase& c, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Tensor> out;
  for (const auto& s : c.inputs) {
    if (s.role == Role::ids) {
      Tensor t = Tensor::empty(s.shape, DType::i32);
      std::uniform_int_distribution<int> dist(0, s.id_range - 1);
      for (std::int64_t i = 0; i < t.numel(); ++i) t.data<std::int32_t>()[i] = dist(rng);
      out.push_back(t);
    } else {
      Tensor t = Tensor::empty(s.shape, DType::f64);
      std::normal_distribution<double> dist(0.0, 1.0);
      for (std::int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = s.offset + s.scale * dist(rng);
      out.push_back(t);
    }
  }
  return out;
}

namespace {

using In = std::vector<Tensor>;
using Out = std::vector<Tensor>;

Tensor like(Backend& b, const Tensor& t) {
  Tensor r = Tensor::empty(t.shape(), t.dtype(), b.device());
  b.fill(r, std::nan(""));
  return r;
}
Tensor zeros_like(Backend& b, const Tensor& t) {
  Tensor r = Tensor::empty(t.shape(), t.dtype(), b.device());
  b.fill(r, 0.0);
  return r;
}

TensorSpec act(Shape s, bool diff = true) { return {std::move(s), Role::act, diff}; }
TensorSpec weight(Shape s) { return {std::move(s), Role::weight, true, 0, 0.3}; }
TensorSpec param(Shape s, double scale = 0.3, double offset = 0.0) {
  return {std::move(s), Role::param, true, 0, scale, offset};
}
TensorSpec stat(Shape s) { return {std::move(s), Role::stat, false}; }
TensorSpec ids(Shape s, int range) { return {std::move(s), Role::ids, false, range}; }

OpCase embedding_case(int n, int vocab, int e) {
  OpCase c;
  c.name = fmt::format("embedding_n{}_v{}_e{}", n, vocab, e);
  c.inputs = {ids({n}, vocab), param({vocab, e})};
  c.outputs = {act({n, e})};
  c.forward = [](Backend& b, const In& in, Out& out) { b.embedding_forward(in[0], in[1], out[0]); };
  c.backward = [](Backend& b, const In& in, const Out&, const Out& dout) {
    Tensor dt = zeros_like(b, in[1]);
    b.embedding_backward(in[0], dout[0], dt);
    return Out{dt};
  };
  return c;
}

OpCase rmsnorm_case(int n, int ch, bool gain, double scale) {
  OpCase c;
  c.name = fmt::format("rmsnorm_n{}_c{}_{}_s{}", n, ch, gain ? "gain" : "nogain", int(scale * 10));
  c.inputs = {act({n, ch})};
  if (gain) c.inputs.push_back(param({ch}, 0.3, 1.0));
  c.outputs = {act({n, ch}), stat({n})};
  c.output_in_loss = {true, false};
  c.forward = [gain, scale](Backend& b, const In& in, Out& out) {
    b.rmsnorm_forward(in[0], gain ? in[1] : Tensor(), 1e-5, scale, out[0], out[1]);
  };
  c.backward = [gain, scale](Backend& b, const In& in, const Out& out, const Out& dout) {
    Tensor dx = like(b, in[0]);
    if (!gain) {
      b.rmsnorm_backward(in[0], Tensor(), out[1], scale, dout[0], dx, nullptr);
      return Out{dx};
    }
    Tensor dw = zeros_like(b, in[1]);
    b.rmsnorm_backward(in[0], in[1], out[1], scale, dout[0], dx, &dw);
    return Out{dx, dw};
  };
  return c;
}

OpCase linear_case(int n, int k, int m) {
  OpCase c;
  c.name = fmt::format("linear_n{}_k{}_m{}", n, k, m);
  c.inputs = {act({n, k}), weight({m, k})};
  c.outputs = {act({n, m})};
  c.forward = [](Backend& b, const In& in, Out& out) { b.linear_forward(in[0], in[1], out[0]); };
  c.backward = [](Backend& b, const In& in, const Out&, const Out& dout) {
    Tensor dx = like(b, in[0]);
    Tensor dw = Tensor::empty(in[1].shape(), b.param_dtype(), b.device());
    b.fill(dw, 0.0);
    b.linear_backward(in[0], in[1], dout[0], dx, dw, false);
    return Out{dx, dw};
  };
  return c;
}

OpCase rope_case(int batch, int seq, int heads, int d, RopeStyle style, int offset) {
  OpCase c;
  c.name = fmt::format("rope_{}_b{}_t{}_h{}_d{}_off{}", rope_style_name(style), batch, seq, heads, d,
                       offset);
  c.inputs = {act({batch * seq, heads * d})};
  c.outputs = {act({batch * seq, heads * d})};
  c.forward = [=](Backend& b, const In& in, Out& out) {
    out[0].copy_from(in[0]);
    b.rope(out[0], batch, seq, heads, d, std::int64_t(heads) * d, offset, 10000.0, style, false);
  };
  c.backward = [=](Backend& b, const In&, const Out&, const Out& dout) {
    Tensor dx = dout[0].clone();
    b.rope(dx, batch, seq, heads, d, std::int64_t(heads) * d, offset, 10000.0, style, true);
    return Out{dx};
  };
  return c;
}

OpCase swiglu_case(int n, int f) {
  OpCase c;
  c.name = fmt::format("swiglu_n{}_f{}", n, f);
  c.inputs = {act({n, f}), act({n, f})};
  c.outputs = {act({n, f})};
  c.forward = [](Backend& b, const In& in, Out& out) { b.swiglu_forward(in[0], in[1], out[0]); };
  c.backward = [](Backend& b, const In& in, const Out&, const Out& dout) {
    Tensor dg = like(b, in[0]), du = like(b, in[1]);
    b.swiglu_backward(in[0], in[1], dout[0], dg, du);
    return Out{dg, du};
  };
  return c;
}


OpCase softmax_attention_case(int batch, int seq, int kv_len, int offset, int qh, int kvh, int d) {
  OpCase c;
  c.name = fmt::format("softmax_attention_b{}_t{}_s{}_off{}_hq{}_hkv{}_d{}", batch, seq, kv_len,
                       offset, qh, kvh, d);
  const AttentionGeometry g = packed_attention_geometry(batch, seq, kv_len, offset, qh, kvh, kvh, d, d);
  c.inputs = {act({batch * seq, qh * d}), act({batch * kv_len, kvh * d}), act({batch * kv_len, kvh * d})};
  c.outputs = {act({batch * seq, qh, d}), stat({batch, qh, seq})};
  c.output_in_loss = {true, false};
  c.forward = [g](Backend& b, const In& in, Out& out) {
    b.softmax_attention_forward(g, in[0], in[1], in[2], out[0], out[1]);
  };
  c.backward = [g](Backend& b, const In& in, const Out& out, const Out& dout) {
    Tensor dq = like(b, in[0]), dk = like(b, in[1]), dv = like(b, in[2]);
    b.softmax_attention_backward(g, in[0], in[1], in[2], out[0], out[1], dout[0], dq, dk, dv);
    return Out{dq, dk, dv};
  };
  return c;
}

OpCase diff_attention_case(int batch, int seq, int kv_len, int offset, int h, int hkv, int d) {
  OpCase c;
  c.name = fmt::format("diff_attention_b{}_t{}_s{}_off{}_h{}_hkv{}_d{}", batch, seq, kv_len, offset,
                       h, hkv, d);
  const AttentionGeometry g = packed_attention_geometry(batch, seq, kv_len, offset, 2 * h, 2 * hkv, hkv, d, 2 * d);
  c.inputs = {act({batch * seq, 2 * h * d}), act({batch * kv_len, 2 * hkv * d}),
              act({batch * kv_len, hkv * 2 * d}), {{1}, Role::stat, true, 0, 0.2, 0.5}};
  c.outputs = {act({batch * seq, h, 2 * d}), act({batch * seq, h, 2 * d}), stat({batch, 2 * h, seq})};
  c.output_in_loss = {true, false, false};
  c.forward = [g](Backend& b, const In& in, Out& out) {
    b.diff_attention_forward(g, in[0], in[1], in[2], in[3], out[0], out[1], out[2]);
  };
  c.backward = [g](Backend& b, const In& in, const Out& out, const Out& dout) {
    Tensor dq = like(b, in[0]), dk = like(b, in[1]), dv = like(b, in[2]);
    Tensor dl = zeros_like(b, in[3]);
    b.diff_attention_backward(g, in[0], in[1], in[2], in[3], out[0], out[1], out[2], dout[0], dq,
                              dk, dv, dl);
    return Out{dq, dk, dv, dl};
  };
  return c;
}

OpCase diff_lambda_case(int d, double init) {
  OpCase c;
  c.name = fmt::format("diff_lambda_d{}", d);
  c.inputs = {param({d}, 0.3), param({d}, 0.3), param({d}, 0.3), param({d}, 0.3)};
  c.outputs = {stat({1})};
  c.forward = [init](Backend& b, const In& in, Out& out) {
    b.diff_lambda_forward(in[0], in[1], in[2], in[3], init, out[0]);
  };
  c.backward = [](Backend& b, const In& in, const Out&, const Out& dout) {
    Out g{zeros_like(b, in[0]), zeros_like(b, in[1]), zeros_like(b, in[2]), zeros_like(b, in[3])};
    b.diff_lambda_backward(in[0], in[1], in[2], in[3], dout[0], g[0], g[1], g[2], g[3]);
    return g;
  };
  return c;
}

OpCase v2_combine_case(int n, int h, int d) {
  OpCase c;
  c.name = fmt::format("v2_combine_n{}_h{}_d{}", n, h, d);
  c.inputs = {act({n, 2 * h, d}), act({n, h})};
  c.outputs = {act({n, h, d})};
  c.forward = [](Backend& b, const In& in, Out& out) { b.v2_combine_forward(in[0], in[1], out[0]); };
  c.backward = [](Backend& b, const In& in, const Out&, const Out& dout) {
    Tensor da = like(b, in[0]), dg = like(b, in[1]);
    b.v2_combine_backward(in[0], in[1], dout[0], da, dg);
    return Out{da, dg};
  };
  return c;
}

// DIFF V2 attention forward (fused on CUDA/Hopper); its backward is the two ops the model runs:
// v2_combine_backward, then softmax_attention_backward on the per-head outputs.
OpCase diff_v2_attention_case(int batch, int seq, int kv_len, int offset, int h, int hkv, int d) {
  OpCase c;
  c.name = fmt::format("diff_v2_attention_b{}_t{}_s{}_off{}_h{}_hkv{}_d{}", batch, seq, kv_len,
                       offset, h, hkv, d);
  const AttentionGeometry g = packed_attention_geometry(batch, seq, kv_len, offset, 2 * h, hkv, hkv, d, d);
  c.inputs = {act({batch * seq, 2 * h * d}), act({batch * kv_len, hkv * d}),
              act({batch * kv_len, hkv * d}), act({batch * seq, h})};
  c.outputs = {act({batch * seq, h, d}), act({batch * seq, 2 * h, d}), stat({batch, 2 * h, seq})};
  c.output_in_loss = {true, false, false};
  c.forward = [g](Backend& b, const In& in, Out& out) {
    b.diff_v2_attention_forward(g, in[0], in[1], in[2], in[3], out[1], out[2], out[0]);
  };
  c.backward = [g](Backend& b, const In& in, const Out& out, const Out& dout) {
    Tensor datt = like(b, out[1]), dgate = like(b, in[3]);
    b.v2_combine_backward(out[1], in[3], dout[0], datt, dgate);
    Tensor dq = like(b, in[0]), dk = like(b, in[1]), dv = like(b, in[2]);
    b.softmax_attention_backward(g, in[0], in[1], in[2], out[1], out[2], datt, dq, dk, dv);
    return Out{dq, dk, dv, dgate};
  };
  return c;
}

OpCase cross_entropy_case(int n, int vocab) {
  OpCase c;
  c.name = fmt::format("cross_entropy_n{}_v{}", n, vocab);
  c.inputs = {{{n, vocab}, Role::act, true, 0, 2.0}, ids({n}, vocab)};
  c.outputs = {stat({n})};
  c.unit_output_weights = true;
  c.forward = [](Backend& b, const In& in, Out& out) {
    b.cross_entropy_forward(in[0], in[1], out[0]);
  };
  // The fused op takes one scalar grad_scale, so the objective here is the plain sum of losses
  // (dout = 1): the gradient check weights the losses with 1.
  c.backward = [](Backend& b, const In& in, const Out&, const Out&) {
    Tensor losses = Tensor::empty({in[1].numel()}, b.param_dtype(), b.device());
    Tensor dl = like(b, in[0]);
    b.cross_entropy_forward_backward(in[0], in[1], 1.0f, losses, dl);
    return Out{dl};
  };
  return c;
}

}  // namespace

std::vector<OpCase> all_op_cases() {
  std::vector<OpCase> cases;
  cases.push_back(embedding_case(7, 11, 5));
  cases.push_back(rmsnorm_case(5, 13, true, 1.0));
  cases.push_back(rmsnorm_case(7, 8, false, 0.8));
  cases.push_back(rmsnorm_case(3, 16, true, 0.2));
  cases.push_back(linear_case(5, 7, 11));
  cases.push_back(linear_case(1, 16, 3));
  cases.push_back(rope_case(2, 5, 3, 8, RopeStyle::interleaved, 0));
  cases.push_back(rope_case(1, 7, 2, 6, RopeStyle::half_split, 3));
  cases.push_back(swiglu_case(5, 13));
  cases.push_back(softmax_attention_case(2, 5, 5, 0, 2, 2, 4));   // MHA
  cases.push_back(softmax_attention_case(1, 7, 7, 0, 4, 2, 6));   // GQA
  cases.push_back(softmax_attention_case(1, 3, 8, 5, 2, 1, 4));   // decode-style offset
  cases.push_back(diff_attention_case(2, 5, 5, 0, 2, 2, 4));      // MHA
  cases.push_back(diff_attention_case(1, 7, 7, 0, 4, 2, 4));      // GQA n_rep = 2
  cases.push_back(diff_attention_case(1, 2, 6, 4, 2, 1, 6));      // decode-style offset, GQA
  cases.push_back(diff_lambda_case(6, 0.2));
  cases.push_back(v2_combine_case(5, 3, 4));
  // head dim 64: the size the CUDA kernels take, so these also run on the GPU
  cases.push_back(diff_v2_attention_case(2, 9, 9, 0, 2, 1, 64));  // GQA: one kv head per 4 queries
  cases.push_back(diff_v2_attention_case(1, 3, 11, 8, 2, 2, 64));  // decode-style offset, MHA pairs
  cases.push_back(cross_entropy_case(5, 11));
  for (auto& c : probe_op_cases()) cases.push_back(std::move(c));
  return cases;
}

}  // namespace difftx::testing
