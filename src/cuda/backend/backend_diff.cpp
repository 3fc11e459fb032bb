// CudaBackend DIFF ops outside attention: the DIFF V1 lambda re-parameterisation and the
// DIFF V2 gated combine of paired heads. Each method checks its tensors (validate.h), then
// calls the op's raw-pointer launcher.
#include <fmt/format.h>

#include "../ops/diff_lambda.cuh"
#include "../ops/v2_combine.cuh"
#include "cuda_backend.h"
#include "validate.h"

namespace difftx::cuda {

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

}  // namespace difftx::cuda
