// CudaBackend loss: the cross-entropy fused with the final softmax (training: losses and
// dlogits in one pass; evaluation: losses only). Checks the tensors (validate.h), then calls
// the raw-pointer launcher.
#include "../ops/cross_entropy.cuh"
#include "cuda_backend.h"
#include "validate.h"

namespace difftx::cuda {

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
