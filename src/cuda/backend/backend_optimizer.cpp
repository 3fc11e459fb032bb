// CudaBackend optimizer support: global-norm pieces (sum of squares, scaling) and AdamW.
#include "../ops/adamw.cuh"
#include "../ops/reduce.cuh"
#include "../ops/scale.cuh"
#include "cuda_backend.h"
#include "validate.h"

namespace difftx::cuda {

double CudaBackend::sum_of_squares(const Tensor& t) {
  const char* op = "sum_of_squares";
  require_dtype(t, op, "t", {DType::f32, DType::bf16, DType::f64});
  const std::size_t bytes = sum_of_squares_workspace_bytes(t.numel());
  Tensor ws = scratch(bytes);
  return launch_sum_of_squares(t.raw(), scalar_type(t), t.numel(), ws.raw(), bytes, stream());
}

void CudaBackend::scale_inplace(Tensor& t, double factor) {
  require_dtype(t, "scale_inplace", "t", {DType::f32, DType::bf16, DType::f64});
  launch_scale(t.raw(), scalar_type(t), t.numel(), factor, stream());
}

void CudaBackend::adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr,
                             double beta1, double beta2, double eps, double weight_decay,
                             int step) {
  const char* op = "adamw_step";
  require_dtype(param, op, "param", {DType::f32});
  require_dtype(grad, op, "grad", {DType::f32});
  require_dtype(m, op, "m", {DType::f32});
  require_dtype(v, op, "v", {DType::f32});
  require_numel(grad, param.numel(), op, "grad");
  require_numel(m, param.numel(), op, "m");
  require_numel(v, param.numel(), op, "v");
  require(step >= 1, op, "step must be >= 1 (1-based)");
  launch_adamw(static_cast<float*>(param.raw()), static_cast<const float*>(grad.raw()),
               static_cast<float*>(m.raw()), static_cast<float*>(v.raw()), param.numel(), lr, beta1,
               beta2, eps, weight_decay, step, stream());
}

}  // namespace difftx::cuda
