// CudaBackend attention entries: one AttentionPlan per call (the geometry's one check, for the
// kernel family chosen at construction), then the tensors against the plan's operand sizes,
// then the fused flash-attention launchers (which check only their pointers). The backward's
// workspace comes from the caching allocator.
#include "cuda_backend.h"
#include "difftx/cuda/attention/attention.h"
#include "validate.h"

namespace difftx::cuda {
namespace {

// Three tensors in the layouts of q, k, v: bf16 views holding the strided rows the plan reads.
void require_qkv_layouts(const AttentionPlan& p, const Tensor& q, const Tensor& k, const Tensor& v,
                         const char* op, const char* const (&names)[3]) {
  const Tensor* t[] = {&q, &k, &v};
  const std::int64_t extents[] = {p.q_extent(), p.k_extent(), p.v_extent()};
  for (int i = 0; i < 3; ++i) {
    require_dtype(*t[i], op, names[i], {DType::bf16});
    require_extent(*t[i], extents[i], op, names[i]);
  }
}

void require_operands(const AttentionPlan& p, const Tensor& q, const Tensor& k, const Tensor& v,
                      const char* op) {
  require_qkv_layouts(p, q, k, v, op, {"q", "k", "v"});
}

// dq, dk, dv have the layouts (and row strides) of q, k, v.
void require_input_gradients(const AttentionPlan& p, const Tensor& dq, const Tensor& dk,
                             const Tensor& dv, const char* op) {
  require_qkv_layouts(p, dq, dk, dv, op, {"dq", "dk", "dv"});
}

// A contiguous bf16 activation (out, dout, att, gate) of `numel` elements.
void require_act16(const Tensor& t, std::int64_t numel, const char* op, const char* name) {
  require_dtype(t, op, name, {DType::bf16});
  require_numel(t, numel, op, name);
}

// An f32 statistic (lse, lambda, dlambda) of `numel` elements.
void require_stat(const Tensor& t, std::int64_t numel, const char* op, const char* name) {
  require_dtype(t, op, name, {DType::f32});
  require_numel(t, numel, op, name);
}

const bf16* cbf(const Tensor& t) {
  return static_cast<const bf16*>(t.raw());
}
bf16* mbf(const Tensor& t) {
  return static_cast<bf16*>(t.raw());
}
const float* cf32(const Tensor& t) {
  return static_cast<const float*>(t.raw());
}
float* mf32(const Tensor& t) {
  return static_cast<float*>(t.raw());
}

}  // namespace

void CudaBackend::softmax_attention_forward(const AttentionGeometry& g, const Tensor& q,
                                            const Tensor& k, const Tensor& v, Tensor& out,
                                            Tensor& lse) {
  const char* op = "softmax_attention_forward";
  const AttentionPlan p = attention_plan(g, AttentionKind::softmax);
  require_operands(p, q, k, v, op);
  require_act16(out, p.out_numel(), op, "out");
  require_stat(lse, p.lse_numel(), op, "lse");
  ::difftx::cuda::softmax_attention_forward(p, cbf(q), cbf(k), cbf(v), mbf(out), mf32(lse),
                                            stream());
}

void CudaBackend::diff_v2_attention_forward(const AttentionGeometry& g, const Tensor& q,
                                            const Tensor& k, const Tensor& v,
                                            const Tensor& gate_logits, Tensor& att, Tensor& lse,
                                            Tensor& out) {
  // The fused kernel exists in the sm90 family for the geometries it takes; elsewhere the two
  // ops (softmax attention, then the combine), each with its own checked entry.
  const std::optional<AttentionPlan> fused =
      AttentionPlan::try_make(g, AttentionKind::diff_v2, attention_kernels_);
  if (!fused) {
    Backend::diff_v2_attention_forward(g, q, k, v, gate_logits, att, lse, out);
    return;
  }
  const char* op = "diff_v2_attention_forward";
  const AttentionPlan& p = *fused;
  require_operands(p, q, k, v, op);
  require_act16(att, p.att_numel(), op, "att");
  require_act16(out, p.out_numel(), op, "out");
  require_act16(gate_logits, p.gate_numel(), op, "gate_logits");
  require_stat(lse, p.lse_numel(), op, "lse");
  ::difftx::cuda::diff_v2_attention_forward(p, cbf(q), cbf(k), cbf(v), cbf(gate_logits), mbf(att),
                                            mbf(out), mf32(lse), stream());
}

void CudaBackend::softmax_attention_backward(const AttentionGeometry& g, const Tensor& q,
                                             const Tensor& k, const Tensor& v, const Tensor& out,
                                             const Tensor& lse, const Tensor& dout, Tensor& dq,
                                             Tensor& dk, Tensor& dv) {
  const char* op = "softmax_attention_backward";
  const AttentionPlan p = attention_plan(g, AttentionKind::softmax);
  require_operands(p, q, k, v, op);
  require_act16(out, p.out_numel(), op, "out");
  require_stat(lse, p.lse_numel(), op, "lse");
  require_act16(dout, p.out_numel(), op, "dout");
  require_input_gradients(p, dq, dk, dv, op);
  const std::size_t bytes = p.backward_workspace_bytes();
  Tensor ws = scratch(bytes);
  ::difftx::cuda::softmax_attention_backward(p, cbf(q), cbf(k), cbf(v), cbf(out), cf32(lse),
                                             cbf(dout), mbf(dq), mbf(dk), mbf(dv),
                                             ws.defined() ? ws.raw() : nullptr, bytes, stream());
}

void CudaBackend::diff_attention_forward(const AttentionGeometry& g, const Tensor& q,
                                         const Tensor& k, const Tensor& v, const Tensor& lambda,
                                         Tensor& out, Tensor& out2, Tensor& lse) {
  const char* op = "diff_attention_forward";
  const AttentionPlan p = attention_plan(g, AttentionKind::diff_v1);
  require_operands(p, q, k, v, op);
  require_stat(lambda, 1, op, "lambda");
  require_act16(out, p.out_numel(), op, "out");
  if (out2.defined()) require_act16(out2, p.out_numel(), op, "out2");
  require_stat(lse, p.lse_numel(), op, "lse");
  ::difftx::cuda::diff_attention_forward(p, cbf(q), cbf(k), cbf(v), cf32(lambda), mbf(out),
                                         out2.defined() ? mbf(out2) : nullptr, mf32(lse), stream());
}

void CudaBackend::diff_attention_backward(const AttentionGeometry& g, const Tensor& q,
                                          const Tensor& k, const Tensor& v, const Tensor& lambda,
                                          const Tensor& out, const Tensor& out2, const Tensor& lse,
                                          const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv,
                                          Tensor& dlambda) {
  const char* op = "diff_attention_backward";
  const AttentionPlan p = attention_plan(g, AttentionKind::diff_v1);
  require_operands(p, q, k, v, op);
  require_stat(lambda, 1, op, "lambda");
  require_act16(out, p.out_numel(), op, "out");
  require_act16(out2, p.out_numel(), op, "out2 (A2 V, kept by the forward)");
  require_stat(lse, p.lse_numel(), op, "lse");
  require_act16(dout, p.out_numel(), op, "dout");
  require_input_gradients(p, dq, dk, dv, op);
  require_stat(dlambda, 1, op, "dlambda");
  const std::size_t bytes = p.backward_workspace_bytes();
  Tensor ws = scratch(bytes);
  ::difftx::cuda::diff_attention_backward(
      p, cbf(q), cbf(k), cbf(v), cf32(lambda), cbf(out), cbf(out2), cf32(lse), cbf(dout), mbf(dq),
      mbf(dk), mbf(dv), mf32(dlambda), ws.defined() ? ws.raw() : nullptr, bytes, stream());
}

}  // namespace difftx::cuda
