// CudaBackend attention entries: check the tensors against the geometry, then call the fused
// flash-attention kernels of include/difftx/cuda/attention.h (which check the head dims and
// alignment themselves). The backward's workspace comes from the caching allocator.
#include "cuda_backend.h"
#include "difftx/cuda/attention.h"
#include "validate.h"

namespace difftx::cuda {
namespace {

// A (tokens, width) operand laid out with `stride` elements per token, possibly a view into a
// wider fused buffer: the last element read is (tokens-1)*stride + width - 1.
void require_strided(const Tensor& t, std::int64_t tokens, std::int64_t stride, std::int64_t width,
                     const char* op, const char* name) {
  require_dtype(t, op, name, {DType::bf16});
  DIFFTX_CHECK(stride >= width, "cuda backend: {}: {} row stride {} is below its width {}", op,
               name, stride, width);
  DIFFTX_CHECK(t.numel() >= (tokens - 1) * stride + width,
               "cuda backend: {}: {} is {}, too small for {} tokens of stride {} and width {}", op,
               name, t.describe(), tokens, stride, width);
}

struct AttentionShapes {
  std::int64_t q_tokens, kv_tokens, out_numel, lse_numel;
};

AttentionShapes check_operands(const AttentionGeometry& g, bool diff, const Tensor& q,
                               const Tensor& k, const Tensor& v, const char* op) {
  DIFFTX_CHECK(g.batch > 0 && g.q_len > 0 && g.q_offset >= 0 && g.kv_len >= g.q_offset + g.q_len,
               "cuda backend: {}: bad geometry (B={}, T={}, S={}, offset={})", op, g.batch, g.q_len,
               g.kv_len, g.q_offset);
  DIFFTX_CHECK(g.q_heads > 0 && g.k_heads > 0 && g.v_heads > 0 && g.head_dim > 0 &&
                   g.v_head_dim > 0 && (!diff || g.q_heads % 2 == 0),
               "cuda backend: {}: bad heads (q {}, k {}, v {}, d {}, dv {})", op, g.q_heads,
               g.k_heads, g.v_heads, g.head_dim, g.v_head_dim);
  AttentionShapes s{};
  s.q_tokens = std::int64_t(g.batch) * g.q_len;
  s.kv_tokens = std::int64_t(g.batch) * g.kv_len;
  const std::int64_t out_heads = diff ? g.q_heads / 2 : g.q_heads;
  s.out_numel = s.q_tokens * out_heads * g.v_head_dim;
  s.lse_numel = std::int64_t(g.batch) * g.q_heads * g.q_len;
  require_strided(q, s.q_tokens, g.q_row_stride, std::int64_t(g.q_heads) * g.head_dim, op, "q");
  require_strided(k, s.kv_tokens, g.kv_row_stride_k, std::int64_t(g.k_heads) * g.head_dim, op, "k");
  require_strided(v, s.kv_tokens, g.kv_row_stride_v, std::int64_t(g.v_heads) * g.v_head_dim, op,
                  "v");
  return s;
}

// dq, dk, dv have the layouts (and row strides) of q, k, v.
void require_input_gradients(const AttentionGeometry& g, const AttentionShapes& s, const Tensor& dq,
                             const Tensor& dk, const Tensor& dv, const char* op) {
  require_strided(dq, s.q_tokens, g.q_row_stride, std::int64_t(g.q_heads) * g.head_dim, op, "dq");
  require_strided(dk, s.kv_tokens, g.kv_row_stride_k, std::int64_t(g.k_heads) * g.head_dim, op,
                  "dk");
  require_strided(dv, s.kv_tokens, g.kv_row_stride_v, std::int64_t(g.v_heads) * g.v_head_dim, op,
                  "dv");
}

void require_contiguous_act(const Tensor& t, std::int64_t numel, const char* op, const char* name) {
  require_dtype(t, op, name, {DType::bf16});
  require_numel(t, numel, op, name);
}

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

}  // namespace

void CudaBackend::softmax_attention_forward(const AttentionGeometry& g, const Tensor& q,
                                            const Tensor& k, const Tensor& v, Tensor& out,
                                            Tensor& lse) {
  const char* op = "softmax_attention_forward";
  const AttentionShapes s = check_operands(g, false, q, k, v, op);
  require_contiguous_act(out, s.out_numel, op, "out");
  require_stat(lse, s.lse_numel, op, "lse");
  ::difftx::cuda::softmax_attention_forward(g, cbf(q), cbf(k), cbf(v), mbf(out),
                                            static_cast<float*>(lse.raw()), stream());
}

void CudaBackend::diff_v2_attention_forward(const AttentionGeometry& g, const Tensor& q,
                                            const Tensor& k, const Tensor& v,
                                            const Tensor& gate_logits, Tensor& att, Tensor& lse,
                                            Tensor& out) {
  // the fused kernel exists for Hopper; elsewhere (and for head dims it does not take) the two ops
  const bool fused = ::difftx::cuda::diff_v2_attention_fused_available() &&
                     (g.head_dim == 64 || g.head_dim == 128) && g.v_head_dim == g.head_dim &&
                     g.q_heads % 2 == 0 && g.k_heads > 0 && (g.q_heads / g.k_heads) % 2 == 0;
  if (!fused) {
    Backend::diff_v2_attention_forward(g, q, k, v, gate_logits, att, lse, out);
    return;
  }
  const char* op = "diff_v2_attention_forward";
  const AttentionShapes s = check_operands(g, false, q, k, v, op);
  require_contiguous_act(att, s.out_numel, op, "att");
  require_contiguous_act(out, s.out_numel / 2, op, "out");
  require_contiguous_act(gate_logits, s.q_tokens * (g.q_heads / 2), op, "gate_logits");
  require_stat(lse, s.lse_numel, op, "lse");
  ::difftx::cuda::diff_v2_attention_forward(g, cbf(q), cbf(k), cbf(v), cbf(gate_logits),
                                            mbf(att), mbf(out), static_cast<float*>(lse.raw()),
                                            stream());
}

void CudaBackend::softmax_attention_backward(const AttentionGeometry& g, const Tensor& q,
                                             const Tensor& k, const Tensor& v, const Tensor& out,
                                             const Tensor& lse, const Tensor& dout, Tensor& dq,
                                             Tensor& dk, Tensor& dv) {
  const char* op = "softmax_attention_backward";
  const AttentionShapes s = check_operands(g, false, q, k, v, op);
  require_contiguous_act(out, s.out_numel, op, "out");
  require_stat(lse, s.lse_numel, op, "lse");
  require_contiguous_act(dout, s.out_numel, op, "dout");
  require_input_gradients(g, s, dq, dk, dv, op);
  const std::size_t bytes = attention_backward_workspace_bytes(g);
  Tensor ws = scratch(bytes);
  ::difftx::cuda::softmax_attention_backward(
      g, cbf(q), cbf(k), cbf(v), cbf(out), static_cast<const float*>(lse.raw()), cbf(dout), mbf(dq),
      mbf(dk), mbf(dv), ws.defined() ? ws.raw() : nullptr, bytes, stream());
}

void CudaBackend::diff_attention_forward(const AttentionGeometry& g, const Tensor& q,
                                         const Tensor& k, const Tensor& v, const Tensor& lambda,
                                         Tensor& out, Tensor& out2, Tensor& lse) {
  const char* op = "diff_attention_forward";
  const AttentionShapes s = check_operands(g, true, q, k, v, op);
  require_stat(lambda, 1, op, "lambda");
  require_contiguous_act(out, s.out_numel, op, "out");
  if (out2.defined()) require_contiguous_act(out2, s.out_numel, op, "out2");
  require_stat(lse, s.lse_numel, op, "lse");
  ::difftx::cuda::diff_attention_forward(
      g, cbf(q), cbf(k), cbf(v), static_cast<const float*>(lambda.raw()), mbf(out),
      out2.defined() ? mbf(out2) : nullptr, static_cast<float*>(lse.raw()), stream());
}

void CudaBackend::diff_attention_backward(const AttentionGeometry& g, const Tensor& q,
                                          const Tensor& k, const Tensor& v, const Tensor& lambda,
                                          const Tensor& out, const Tensor& out2, const Tensor& lse,
                                          const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv,
                                          Tensor& dlambda) {
  const char* op = "diff_attention_backward";
  const AttentionShapes s = check_operands(g, true, q, k, v, op);
  require_stat(lambda, 1, op, "lambda");
  require_contiguous_act(out, s.out_numel, op, "out");
  require_contiguous_act(out2, s.out_numel, op, "out2 (A2 V, kept by the forward)");
  require_stat(lse, s.lse_numel, op, "lse");
  require_contiguous_act(dout, s.out_numel, op, "dout");
  require_input_gradients(g, s, dq, dk, dv, op);
  require_stat(dlambda, 1, op, "dlambda");
  const std::size_t bytes = attention_backward_workspace_bytes(g);
  Tensor ws = scratch(bytes);
  ::difftx::cuda::diff_attention_backward(
      g, cbf(q), cbf(k), cbf(v), static_cast<const float*>(lambda.raw()), cbf(out), cbf(out2),
      static_cast<const float*>(lse.raw()), cbf(dout), mbf(dq), mbf(dk), mbf(dv),
      static_cast<float*>(dlambda.raw()), ws.defined() ? ws.raw() : nullptr, bytes, stream());
}

}  // namespace difftx::cuda
