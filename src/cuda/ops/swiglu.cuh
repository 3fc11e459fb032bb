// SwiGLU gate: out = silu(gate) * up elementwise, and its backward.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "difftx/cuda/common/scalar_type.h"

namespace difftx::cuda {

// gate, up, out (n) of `type` (f32 or bf16), computed in f32.
void launch_swiglu_forward(const void* gate, const void* up, void* out, ScalarType type,
                           std::int64_t n, cudaStream_t stream);
// dgate = dout * up * silu'(gate), dup = dout * silu(gate); all (n) of `type`. dgate/dup may
// alias gate/up (each element is read before it is written).
void launch_swiglu_backward(const void* gate, const void* up, const void* dout, void* dgate,
                            void* dup, ScalarType type, std::int64_t n, cudaStream_t stream);

}  // namespace difftx::cuda
