// Tensor checks of the CUDA backend's op entries (see validate.h).
#include "validate.h"

#include <fmt/format.h>

#include <string>

namespace difftx::cuda {

ScalarType scalar_type(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return ScalarType::f32;
    case DType::f64:
      return ScalarType::f64;
    case DType::bf16:
      return ScalarType::bf16;
    case DType::i32:
      return ScalarType::i32;
  }
  fail("unknown dtype {}", static_cast<int>(dtype));
}

ScalarType scalar_type(const Tensor& t) {
  return scalar_type(t.dtype());
}

void require_cuda(const Tensor& t, const char* op, const char* name) {
  DIFFTX_CHECK(t.defined(), "cuda backend: {}: {} is undefined", op, name);
  DIFFTX_CHECK(t.device() == Device::cuda,
               "cuda backend: {}: {} is {}; expected a tensor on the CUDA device (move it with "
               ".to(Device::cuda))",
               op, name, t.describe());
}

void require_dtype(const Tensor& t, const char* op, const char* name,
                   std::initializer_list<DType> allowed) {
  require_cuda(t, op, name);
  std::string names;
  for (DType d : allowed) {
    if (d == t.dtype()) return;
    names += names.empty() ? dtype_name(d) : fmt::format(" or {}", dtype_name(d));
  }
  fail("cuda backend: {}: {} is {}; expected dtype {}", op, name, t.describe(), names);
}

void require_numel(const Tensor& t, std::int64_t expected, const char* op, const char* name) {
  DIFFTX_CHECK(t.defined() && t.numel() == expected,
               "cuda backend: {}: {} is {}; expected {} elements", op, name,
               t.defined() ? t.describe() : std::string("undefined"), expected);
}

void require_extent(const Tensor& t, std::int64_t extent, const char* op, const char* name) {
  DIFFTX_CHECK(t.numel() >= extent,
               "cuda backend: {}: {} is {}, too small for its geometry ({} elements from the "
               "first to the last one read)",
               op, name, t.describe(), extent);
}

void require_act(const Tensor& t, const char* op, const char* name) {
  require_dtype(t, op, name, {DType::bf16, DType::f32});
}

void require_vector(const Tensor& t, std::int64_t n, const char* op, const char* name) {
  require_dtype(t, op, name, {DType::f32, DType::bf16});
  require_numel(t, n, op, name);
}

void require_same_dtype(const Tensor& a, const char* a_name, const Tensor& b, const char* b_name,
                        const char* op) {
  DIFFTX_CHECK(a.dtype() == b.dtype(),
               "cuda backend: {}: {} is {} but {} is {}; they must share a dtype", op, b_name,
               b.describe(), a_name, a.describe());
}

void require(bool condition, const char* op, const char* message) {
  DIFFTX_CHECK(condition, "cuda backend: {}: {}", op, message);
}

}  // namespace difftx::cuda
