// CudaBackend layer ops: embedding, RMSNorm, linear (cuBLASLt), RoPE and SwiGLU. Each method
// checks its tensors (validate.h), then calls the op's raw-pointer launcher.
#include <fmt/format.h>

#include "../ops/embedding.cuh"
#include "../ops/rmsnorm.cuh"
#include "../ops/rope.cuh"
#include "../ops/swiglu.cuh"
#include "cuda_backend.h"
#include "validate.h"

namespace difftx::cuda {

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

// ---- linear (cuBLASLt)

namespace {

struct LinearDims {
  std::int64_t n, k, m;  // x (n, k), w (m, k)
};

// x and w of one dtype (bf16 or f32: the model passes the bf16 compute copy of a weight).
LinearDims linear_dims(const Tensor& x, const Tensor& w, const char* op) {
  require_act(x, op, "x");
  require_cuda(w, op, "w");
  require_same_dtype(x, "x", w, "w (pass the bf16 compute copy of the weight)", op);
  require(w.ndim() == 2, op, "w must be 2-D (out_features, in_features)");
  const std::int64_t m = w.dim(0), k = w.dim(1);
  require(k > 0 && x.numel() % k == 0, op,
          "x's element count is not a multiple of w's in_features");
  return {x.numel() / k, k, m};
}

}  // namespace

void CudaBackend::linear_forward(const Tensor& x, const Tensor& w, Tensor& out) {
  const char* op = "linear_forward";
  const LinearDims s = linear_dims(x, w, op);
  require_cuda(out, op, "out");
  require_same_dtype(x, "x", out, "out", op);
  require_numel(out, s.n * s.m, op, "out");
  linear_->forward(x.raw(), w.raw(), out.raw(), scalar_type(x), s.n, s.k, s.m);
}

void CudaBackend::linear_backward(const Tensor& x, const Tensor& w, const Tensor& dout, Tensor& dx,
                                  Tensor& dw, bool accumulate_dx) {
  const char* op = "linear_backward";
  const LinearDims s = linear_dims(x, w, op);
  require_cuda(dout, op, "dout");
  require_cuda(dx, op, "dx");
  require_same_dtype(x, "x", dout, "dout", op);
  require_same_dtype(x, "x", dx, "dx", op);
  require_dtype(dw, op, "dw", {DType::f32});
  require_numel(dout, s.n * s.m, op, "dout");
  require_numel(dx, s.n * s.k, op, "dx");
  require_numel(dw, s.m * s.k, op, "dw");
  linear_->backward(x.raw(), w.raw(), dout.raw(), dx.raw(), static_cast<float*>(dw.raw()),
                    scalar_type(x), s.n, s.k, s.m, accumulate_dx);
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

}  // namespace difftx::cuda
