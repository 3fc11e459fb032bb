// Op cases of the fused cross-entropy (forward only, and forward with the backward).
#include <fmt/format.h>

#include "case_builders.h"
#include "op_compare.h"
#include "op_run.h"

namespace difftx::testing {

OpCase cross_entropy_case(int n, int vocab, DType logits_dtype, double logit_scale,
                          double grad_scale, bool alias) {
  OpCase c;
  c.name = fmt::format("cross_entropy_n{}_v{}_{}{}", n, vocab, dtype_name(logits_dtype),
                       alias ? "_aliased" : "");
  c.op = "cross_entropy";
  c.inputs = {act("logits", {n, vocab}).normal(logit_scale).on_device(logits_dtype).with_grad(),
              ids("targets", {n}, vocab).planted([](std::vector<double>& t) {
                // ignored rows: loss 0, gradient 0
                if (t.size() > 1) t[1] = -1;
                if (t.size() > 4) t[4] = -100;
              })};
  c.outputs = {stat("losses", {n})};
  // The fused op takes one scalar weight: the objective is grad_scale * sum of the losses.
  c.dout_value = grad_scale;
  c.grads = {act("dlogits", {n, vocab}).on_device(logits_dtype), stat("losses_fwd_bwd", {n})};
  c.forward = [](Backend& b, const Tensors& in, Tensors& out) {
    b.cross_entropy_forward(in[0], in[1], out[0]);
  };
  const auto scale = static_cast<float>(grad_scale);
  c.backward = [scale, alias](Backend& b, const Tensors& in, const Tensors&, const Tensors&,
                              Tensors& g) {
    if (alias) {  // dlogits overwrites the logits it reads
      g[0].copy_from(in[0]);
      b.cross_entropy_forward_backward(g[0], in[1], scale, g[1], g[0]);
    } else {
      b.cross_entropy_forward_backward(in[0], in[1], scale, g[1], g[0]);
    }
  };
  // The forward-only losses are the forward-backward ones, bit for bit.
  c.check = [](const Comparison& cmp) {
    std::vector<std::string> failures;
    const std::string f =
        equality_failure("forward = forward_backward losses", cmp.device.outputs[0],
                         cmp.device.grads[1].to_double_vector());
    if (!f.empty()) failures.push_back(f);
    return failures;
  };
  return c;
}

}  // namespace difftx::testing
