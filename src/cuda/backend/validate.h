// Tensor checks of the CUDA backend's op entries, the one place where Tensors are validated
// before they become raw pointers for the launchers: every failure throws difftx::Error naming
// the op, the argument and what was expected.
#pragma once

#include <cstdint>
#include <initializer_list>

#include "difftx/core/tensor.h"
#include "difftx/cuda/common/scalar_type.h"

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
// A strided operand (rows `stride` elements apart, possibly a view into wider rows): t holds at
// least `extent` elements (from the first to the last one read).
void require_extent(const Tensor& t, std::int64_t extent, const char* op, const char* name);
// An activation on CUDA: bf16 (the backend's act dtype) or f32.
void require_act(const Tensor& t, const char* op, const char* name);
// A 1-D parameter (gain, lambda vector) of `n` elements: the f32 master or a bf16 copy.
void require_vector(const Tensor& t, std::int64_t n, const char* op, const char* name);
// b has a's dtype.
void require_same_dtype(const Tensor& a, const char* a_name, const Tensor& b, const char* b_name,
                        const char* op);
// A general condition, with a message.
void require(bool condition, const char* op, const char* message);

}  // namespace difftx::cuda
