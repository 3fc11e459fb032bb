// Matrix-vector products for the decode step (a few rows of bf16 activations against bf16
// weights, memory-bound: every weight element is read once with 16-byte loads, f32
// accumulation), with the epilogues that save a pass: the outputs of up to four weights side
// by side (the QKV projection), accumulation into the output (a residual add), and SwiGLU of two
// weights (silu(x W_gate^T) * (x W_up^T)); optionally the RMSNorm that precedes a projection,
// folded into the prologue. Launched with programmatic dependent launch.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "difftx/cuda/common/scalar_type.h"

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
  // Optional RMSNorm of x first (store and swiglu modes): each row becomes x * rstd * gain with
  // rstd = 1 / sqrt(mean(x^2) + norm_eps), rounded to bf16 as rmsnorm_forward rounds it, before
  // the products. Block 0 also writes the normalized rows to xn (n, k) and rstd (n) f32.
  const void* norm_w = nullptr;  // (k) gain, f32 or bf16 (norm_w_f32)
  bool norm_w_f32 = true;
  float norm_eps = 0.f;
  __nv_bfloat16* xn = nullptr;
  float* rstd = nullptr;
};

// Whether the kernel takes these operands: n <= kGemvMaxRows, k % 8 == 0, 16-byte aligned
// x / weights and row strides; with a norm: store or swiglu mode, xn and rstd given, x rows
// contiguous (ldx == k).
bool gemv_supported(const GemvArgs& a);
void launch_gemv(const GemvArgs& a, cudaStream_t stream);

}  // namespace difftx::cuda
