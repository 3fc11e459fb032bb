// Argument checks shared by the CUDA backend's op entries: every failure throws difftx::Error
// naming the op, the argument and what was expected.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "../ops/scalar_type.h"
#include "difftx/core/tensor.h"

namespace difftx::cuda {

ScalarType scalar_type(DType dtype);
ScalarType scalar_type(const Tensor& t);

// t is defined and lives on the CUDA device.
void require_cuda(const Tensor& t, const char* op, const char* name);
// t is a CUDA tensor of one of `allowed`.
void require_dtype(const Tensor& t, const char* op, const char* name,
                   std::initializer_list<DType> allowed);
// t has `expected` elements.
void require_numel(const Tensor& t, std::int64_t expected, const char* op, const char* name);
// b has a's dtype.
void require_same_dtype(const Tensor& a, const char* a_name, const Tensor& b, const char* b_name,
                        const char* op);
// A general condition, with a message.
void require(bool condition, const char* op, const char* message);

}  // namespace difftx::cuda
