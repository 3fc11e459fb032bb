// CudaBackend layer ops: embedding, RMSNorm, linear, RoPE, SwiGLU, DIFF V1 lambda, DIFF V2
// combine and the fused cross-entropy. Each method checks its tensors, then launches.
#include <fmt/format.h>

#include "../ops/cross_entropy.cuh"
#include "../ops/diff_lambda.cuh"
#include "../ops/embedding.cuh"
#include "../ops/rmsnorm.cuh"
#include "../ops/rope.cuh"
#include "../ops/swiglu.cuh"
#include "../ops/v2_combine.cuh"
#include "cuda_backend.h"
#include "validate.h"

namespace difftx::cuda {
namespace {

// Activations on CUDA: bf16 (the backend's act dtype) or f32.
void require_act(const Tensor& t, const char* op, const char* name) {
  require_dtype(t, op, name, {DType::bf16, DType::f32});
}

// A 1-D parameter (gain, lambda vector) of `n` elements: the f32 master or a bf16 copy.
void require_vector(const Tensor& t, std::int64_t n, const char* op, const char* name) {
  require_dtype(t, op, name, {DType::f32, DType::bf16});
  require_numel(t, n, op, name);
}

}  // namespace

// ---- embedding

void CudaBackend::embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out) {
  const char* op = "embedding_forward";
  require_dtype(ids, op, "ids", {DType::i32});
  require_dtype(table, op, "table", {DType::f32, DType::bf16});
  require_act(out, op, "out");
  require(table.ndim() == 2, op, "table must be 2-D (vocab, d_model)");
  const std::int64_t vocab = table.dim(0), e = table.dim(1);
  require_numel(out, ids.numel() * e, op, "out");
  launch_embedding_forward(static_cast<const std::int32_t*>(ids.raw()), table.raw(),
                           scalar_type(table), out.raw(), scalar_type(out), ids.numel(), vocab, e,
                           stream());
}

void CudaBackend::embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable) {
  const char* op = "embedding_backward";
  require_dtype(ids, op, "ids", {DType::i32});
  require_act(dout, op, "dout");
  require_dtype(dtable, op, "dtable", {DType::f32});
  require(dtable.ndim() == 2, op, "dtable must be 2-D (vocab, d_model)");
  const std::int64_t vocab = dtable.dim(0), e = dtable.dim(1), n = ids.numel();
  require_numel(dout, n * e, op, "dout");
  if (n == 0) return;
  const std::size_t bytes = embedding_backward_workspace_bytes(n);
  Tensor ws = scratch(bytes);
  launch_embedding_backward(static_cast<const std::int32_t*>(ids.raw()), dout.raw(),
                            scalar_type(dout), static_cast<float*>(dtable.raw()), n, vocab, e,
                            ws.raw(), bytes, stream());
}

// ---- RMSNorm

void CudaBackend::rmsnorm_forward(const Tensor& x, const Tensor& weight, double eps, double scale,
                                  Tensor& out, Tensor& rstd) {
  const char* op = "rmsnorm_forward";
  require_act(x, op, "x");
  const std::int64_t c = x.dim(-1), n = c > 0 ? x.numel() / c : 0;
  if (weight.defined()) require_vector(weight, c, op, "weight");
  require_cuda(out, op, "out");
  require_same_dtype(x, "x", out, "out", op);
  require_numel(out, x.numel(), op, "out");
  require_dtype(rstd, op, "rstd", {DType::f32});
  require_numel(rstd, n, op, "rstd");
  launch_rmsnorm_forward(x.raw(), scalar_type(x), weight.defined() ? weight.raw() : nullptr,
                         weight.defined() ? scalar_type(weight) : ScalarType::f32, eps, scale,
                         out.raw(), static_cast<float*>(rstd.raw()), n, c, stream());
}

void CudaBackend::rmsnorm_backward(const Tensor& x, const Tensor& weight, const Tensor& rstd,
                                   double scale, const Tensor& dout, Tensor& dx, Tensor* dweight) {
  const char* op = "rmsnorm_backward";
  require_act(x, op, "x");
  const std::int64_t c = x.dim(-1), n = c > 0 ? x.numel() / c : 0;
  if (weight.defined()) require_vector(weight, c, op, "weight");
  require_dtype(rstd, op, "rstd", {DType::f32});
  require_numel(rstd, n, op, "rstd");
  require_cuda(dout, op, "dout");
  require_cuda(dx, op, "dx");
  require_same_dtype(x, "x", dout, "dout", op);
  require_same_dtype(x, "x", dx, "dx", op);
  require_numel(dout, x.numel(), op, "dout");
  require_numel(dx, x.numel(), op, "dx");
  if (dweight) {
    require_dtype(*dweight, op, "dweight", {DType::f32});
    require_numel(*dweight, c, op, "dweight");
  }
  const std::size_t bytes = rmsnorm_backward_workspace_bytes(n, c, dweight != nullptr);
  Tensor ws = scratch(bytes);
  launch_rmsnorm_backward(x.raw(), scalar_type(x), weight.defined() ? weight.raw() : nullptr,
                          weight.defined() ? scalar_type(weight) : ScalarType::f32,
                          static_cast<const float*>(rstd.raw()), scale, dout.raw(), dx.raw(),
                          dweight ? static_cast<float*>(dweight->raw()) : nullptr, n, c,
                          ws.defined() ? ws.raw() : nullptr, bytes, stream());
}

// ---- linear (checks live in CublasLtLinear)

void CudaBackend::linear_forward(const Tensor& x, const Tensor& w, Tensor& out) {
  linear_->forward(x, w, out);
}

void CudaBackend::linear_backward(const Tensor& x, const Tensor& w, const Tensor& dout, Tensor& dx,
                                  Tensor& dw, bool accumulate_dx) {
  linear_->backward(x, w, dout, dx, dw, accumulate_dx);
}

// ---- RoPE

void CudaBackend::rope(Tensor& x, int batch, int seq, int heads, int head_dim,
                       std::int64_t row_stride, int pos_offset, double theta, RopeStyle style,
                       bool inverse) {
  const char* op = "rope";
  require_act(x, op, "x");
  require(batch >= 0 && seq >= 0 && heads >= 0 && pos_offset >= 0, op,
          "negative batch, sequence, head count or position offset");
  require(head_dim > 0 && head_dim % 2 == 0, op, "head_dim must be positive and even");
  require(row_stride >= std::int64_t(heads) * head_dim, op,
          "row_stride is smaller than heads * head_dim");
  require(theta > 0, op, "theta must be positive");
  const std::int64_t tokens = std::int64_t(batch) * seq;
  if (tokens == 0 || heads == 0) return;
  DIFFTX_CHECK(x.numel() >= (tokens - 1) * row_stride + std::int64_t(heads) * head_dim,
               "cuda backend: rope: {} is too small for {} tokens of stride {} with {} heads of {}",
               x.describe(), tokens, row_stride, heads, head_dim);
  launch_rope(x.raw(), scalar_type(x), batch, seq, heads, head_dim, row_stride, pos_offset, theta,
              style == RopeStyle::interleaved, inverse, stream());
}

// ---- SwiGLU

void CudaBackend::swiglu_forward(const Tensor& gate, const Tensor& up, Tensor& out) {
  const char* op = "swiglu_forward";
  require_act(gate, op, "gate");
  require_cuda(up, op, "up");
  require_cuda(out, op, "out");
  require_same_dtype(gate, "gate", up, "up", op);
  require_same_dtype(gate, "gate", out, "out", op);
  require_numel(up, gate.numel(), op, "up");
  require_numel(out, gate.numel(), op, "out");
  launch_swiglu_forward(gate.raw(), up.raw(), out.raw(), scalar_type(gate), gate.numel(), stream());
}

void CudaBackend::swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dout,
                                  Tensor& dgate, Tensor& dup) {
  const char* op = "swiglu_backward";
  require_act(gate, op, "gate");
  const Tensor* others[] = {&up, &dout, &dgate, &dup};
  const char* names[] = {"up", "dout", "dgate", "dup"};
  for (int i = 0; i < 4; ++i) {
    require_cuda(*others[i], op, names[i]);
    require_same_dtype(gate, "gate", *others[i], names[i], op);
    require_numel(*others[i], gate.numel(), op, names[i]);
  }
  launch_swiglu_backward(gate.raw(), up.raw(), dout.raw(), dgate.raw(), dup.raw(),
                         scalar_type(gate), gate.numel(), stream());
}

// ---- DIFF V1 lambda

void CudaBackend::diff_lambda_forward(const Tensor& lq1, const Tensor& lk1, const Tensor& lq2,
                                      const Tensor& lk2, double lambda_init, Tensor& lambda) {
  const char* op = "diff_lambda_forward";
  require_dtype(lq1, op, "lambda_q1", {DType::f32, DType::bf16});
  const std::int64_t d = lq1.numel();
  require_vector(lk1, d, op, "lambda_k1");
  require_vector(lq2, d, op, "lambda_q2");
  require_vector(lk2, d, op, "lambda_k2");
  require(lk1.dtype() == lq1.dtype() && lq2.dtype() == lq1.dtype() && lk2.dtype() == lq1.dtype(),
          op, "the four lambda vectors must share a dtype");
  require_dtype(lambda, op, "lambda", {DType::f32});
  require_numel(lambda, 1, op, "lambda");
  launch_diff_lambda_forward(lq1.raw(), lk1.raw(), lq2.raw(), lk2.raw(), scalar_type(lq1),
                             static_cast<int>(d), lambda_init, static_cast<float*>(lambda.raw()),
                             stream());
}

void CudaBackend::diff_lambda_backward(const Tensor& lq1, const Tensor& lk1, const Tensor& lq2,
                                       const Tensor& lk2, const Tensor& dlambda, Tensor& dlq1,
                                       Tensor& dlk1, Tensor& dlq2, Tensor& dlk2) {
  const char* op = "diff_lambda_backward";
  require_dtype(lq1, op, "lambda_q1", {DType::f32, DType::bf16});
  const std::int64_t d = lq1.numel();
  require_vector(lk1, d, op, "lambda_k1");
  require_vector(lq2, d, op, "lambda_q2");
  require_vector(lk2, d, op, "lambda_k2");
  require(lk1.dtype() == lq1.dtype() && lq2.dtype() == lq1.dtype() && lk2.dtype() == lq1.dtype(),
          op, "the four lambda vectors must share a dtype");
  require_dtype(dlambda, op, "dlambda", {DType::f32});
  require_numel(dlambda, 1, op, "dlambda");
  Tensor* grads[] = {&dlq1, &dlk1, &dlq2, &dlk2};
  const char* names[] = {"dlambda_q1", "dlambda_k1", "dlambda_q2", "dlambda_k2"};
  for (int i = 0; i < 4; ++i) {
    require_dtype(*grads[i], op, names[i], {DType::f32});
    require_numel(*grads[i], d, op, names[i]);
  }
  launch_diff_lambda_backward(lq1.raw(), lk1.raw(), lq2.raw(), lk2.raw(), scalar_type(lq1),
                              static_cast<int>(d), static_cast<const float*>(dlambda.raw()),
                              static_cast<float*>(dlq1.raw()), static_cast<float*>(dlk1.raw()),
                              static_cast<float*>(dlq2.raw()), static_cast<float*>(dlk2.raw()),
                              stream());
}

// ---- DIFF V2 combine

namespace {

struct CombineDims {
  std::int64_t n;
  int h, d;
};

CombineDims combine_dims(const Tensor& a, const Tensor& gate_logits, const char* op) {
  require_act(a, op, "a");
  require_cuda(gate_logits, op, "gate_logits");
  require_same_dtype(a, "a", gate_logits, "gate_logits", op);
  const std::int64_t h = gate_logits.ndim() > 0 ? gate_logits.dim(-1) : 0;
  require(h > 0, op, "gate_logits must have a last dimension h > 0");
  const std::int64_t n = gate_logits.numel() / h;
  DIFFTX_CHECK(n > 0 && a.numel() % (n * 2 * h) == 0,
               "cuda backend: {}: a {} is not (N, 2h, d) for gate_logits {}", op, a.describe(),
               gate_logits.describe());
  return {n, static_cast<int>(h), static_cast<int>(a.numel() / (n * 2 * h))};
}

}  // namespace

void CudaBackend::v2_combine_forward(const Tensor& a, const Tensor& gate_logits, Tensor& out) {
  const char* op = "v2_combine_forward";
  const CombineDims s = combine_dims(a, gate_logits, op);
  require_cuda(out, op, "out");
  require_same_dtype(a, "a", out, "out", op);
  require_numel(out, s.n * s.h * s.d, op, "out");
  launch_v2_combine_forward(a.raw(), gate_logits.raw(), out.raw(), scalar_type(a), s.n, s.h, s.d,
                            stream());
}

void CudaBackend::v2_combine_backward(const Tensor& a, const Tensor& gate_logits,
                                      const Tensor& dout, Tensor& da, Tensor& dgate_logits) {
  const char* op = "v2_combine_backward";
  const CombineDims s = combine_dims(a, gate_logits, op);
  require_cuda(dout, op, "dout");
  require_cuda(da, op, "da");
  require_cuda(dgate_logits, op, "dgate_logits");
  require_same_dtype(a, "a", dout, "dout", op);
  require_same_dtype(a, "a", da, "da", op);
  require_same_dtype(a, "a", dgate_logits, "dgate_logits", op);
  require_numel(dout, s.n * s.h * s.d, op, "dout");
  require_numel(da, a.numel(), op, "da");
  require_numel(dgate_logits, gate_logits.numel(), op, "dgate_logits");
  launch_v2_combine_backward(a.raw(), gate_logits.raw(), dout.raw(), da.raw(), dgate_logits.raw(),
                             scalar_type(a), s.n, s.h, s.d, stream());
}

// ---- cross-entropy

namespace {

std::int64_t check_cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& losses,
                                 const char* op) {
  require_act(logits, op, "logits");
  require_dtype(targets, op, "targets", {DType::i32});
  const std::int64_t n = targets.numel();
  require(n > 0 && logits.numel() % n == 0 && logits.numel() / n > 0, op,
          "logits must hold (N, V) values for N targets");
  require_dtype(losses, op, "losses", {DType::f32});
  require_numel(losses, n, op, "losses");
  return logits.numel() / n;
}

}  // namespace

void CudaBackend::cross_entropy_forward_backward(const Tensor& logits, const Tensor& targets,
                                                 float grad_scale, Tensor& losses,
                                                 Tensor& dlogits) {
  const char* op = "cross_entropy_forward_backward";
  const std::int64_t vocab = check_cross_entropy(logits, targets, losses, op);
  require_cuda(dlogits, op, "dlogits");
  require_same_dtype(logits, "logits", dlogits, "dlogits", op);
  require_numel(dlogits, logits.numel(), op, "dlogits");
  launch_cross_entropy(logits.raw(), scalar_type(logits),
                       static_cast<const std::int32_t*>(targets.raw()), grad_scale,
                       static_cast<float*>(losses.raw()), dlogits.raw(), targets.numel(), vocab,
                       stream());
}

void CudaBackend::cross_entropy_forward(const Tensor& logits, const Tensor& targets,
                                        Tensor& losses) {
  const char* op = "cross_entropy_forward";
  const std::int64_t vocab = check_cross_entropy(logits, targets, losses, op);
  launch_cross_entropy(
      logits.raw(), scalar_type(logits), static_cast<const std::int32_t*>(targets.raw()), 0.f,
      static_cast<float*>(losses.raw()), nullptr, targets.numel(), vocab, stream());
}

}  // namespace difftx::cuda
