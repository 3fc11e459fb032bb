// CudaBackend memory helpers and elementwise adds: fill, convert, synchronize, add, add_inplace.
#include "../ops/add.cuh"
#include "../ops/convert.cuh"
#include "../ops/fill.cuh"
#include "cuda_backend.h"
#include "difftx/cuda/common/check.h"
#include "validate.h"

namespace difftx::cuda {

void CudaBackend::fill(Tensor& t, double value) {
  require_cuda(t, "fill", "t");
  launch_fill(t.raw(), scalar_type(t), t.numel(), value, stream());
}

void CudaBackend::convert(const Tensor& src, Tensor& dst) {
  const char* op = "convert";
  require_cuda(src, op, "src");
  require_cuda(dst, op, "dst");
  require_numel(dst, src.numel(), op, "dst");
  require(src.dtype() == dst.dtype() || (src.dtype() != DType::i32 && dst.dtype() != DType::i32),
          op, "i32 tensors convert only to i32");
  launch_convert(src.raw(), scalar_type(src), dst.raw(), scalar_type(dst), src.numel(), stream());
}

void CudaBackend::synchronize() {
  DIFFTX_CUDA_CHECK("synchronize", cudaStreamSynchronize(stream()));
}

void CudaBackend::add(const Tensor& a, const Tensor& b, Tensor& out) {
  const char* op = "add";
  require_dtype(a, op, "a", {DType::bf16, DType::f32, DType::f64});
  require_cuda(b, op, "b");
  require_cuda(out, op, "out");
  require_same_dtype(a, "a", b, "b", op);
  require_same_dtype(a, "a", out, "out", op);
  require_numel(b, a.numel(), op, "b");
  require_numel(out, a.numel(), op, "out");
  launch_add(a.raw(), b.raw(), out.raw(), scalar_type(a), a.numel(), stream());
}

void CudaBackend::add_inplace(Tensor& acc, const Tensor& b) {
  const char* op = "add_inplace";
  require_dtype(acc, op, "acc", {DType::bf16, DType::f32, DType::f64});
  require_cuda(b, op, "b");
  require_same_dtype(acc, "acc", b, "b", op);
  require_numel(b, acc.numel(), op, "b");
  launch_add(acc.raw(), b.raw(), acc.raw(), scalar_type(acc), acc.numel(), stream());
}

}  // namespace difftx::cuda
