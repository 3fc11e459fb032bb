// Matrix-vector products for the decode step (a few rows of bf16 activations against bf16
// weights, memory-bound: every weight element is read once with 16-byte loads, f32
// accumulation), with the epilogues that save a pass: the outputs of up to four weights side
// by side (the QKV projection), accumulation into the output (a residual add), and SwiGLU of two
// weights (silu(x W_gate^T) * (x W_up^T)). Launched with programmatic dependent launch.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "scalar_type.h"

namespace difftx::cuda {

inline constexpr int kGemvMaxRows = 8;
inline constexpr int kGemvMaxWeights = 4;

enum class GemvMode : std::uint8_t {
  store,       // out[:, offset_i + j] = x . W_i[j]
  accumulate,  // out[:, j] += x . W_0[j]
  swiglu,      // out[:, j] = silu(x . W_0[j]) * (x . W_1[j])
};

struct GemvArgs {
  const __nv_bfloat16* x = nullptr;  // (n, k) with row stride ldx
  std::int64_t ldx = 0;
  int n = 0;                                     // 1 .. kGemvMaxRows
  int k = 0;                                     // a multiple of 8
  const __nv_bfloat16* w[kGemvMaxWeights] = {};  // (m_i, k) row-major
  int m[kGemvMaxWeights] = {};
  int count = 0;
  void* out = nullptr;  // (n, ldo) of out_type (bf16 or f32)
  ScalarType out_type = ScalarType::bf16;
  std::int64_t ldo = 0;
  GemvMode mode = GemvMode::store;
};

// Whether the kernel takes these operands: n <= kGemvMaxRows, k % 8 == 0, 16-byte aligned
// x / weights and row strides.
bool gemv_supported(const GemvArgs& a);
void launch_gemv(const GemvArgs& a, cudaStream_t stream);

}  // namespace difftx::cuda
