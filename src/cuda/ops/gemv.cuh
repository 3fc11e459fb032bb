// Matrix-vector products for the decode step (a few rows of bf16 activations against bf16
// weights, memory-bound: every weight element is read once with 16-byte loads, f32
// accumulation), with the epilogues that save a pass: the outputs of up to four weights side
// by side (the QKV projection), accumulation into the output (a residual add), SwiGLU of two
// weights (silu(x W_gate^T) * (x W_up^T)), and the QKV projection with RoPE and the KV pool
// writes; optionally the RMSNorm that precedes a projection, folded into the prologue. Launched
// with programmatic dependent launch.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "difftx/cuda/common/scalar_type.h"

namespace difftx::cuda {

// The kernel is built for up to kGemvMaxRows rows, and takes up to kGemvDefaultRows unless
// DIFFTX_GEMV_MAX_ROWS says otherwise: on an H200 a decode step of 8 rows ran 41% faster at the
// 1.4B shape (4.236 -> 2.498 ms) and 14% at 125M (0.850 -> 0.735 ms) with its projections on
// cuBLASLt, while at 4 rows the GEMV tied (1.4B) or won by a third (125M, 0.452 against 0.675
// ms); bench/engine/results/2026-12-01-h200-b. Its cost grows with the rows (the dot products
// are FMAs on the CUDA cores), cuBLASLt's hardly does.
inline constexpr int kGemvMaxRows = 8;
inline constexpr int kGemvDefaultRows = 4;
inline constexpr int kGemvMaxWeights = 4;

enum class GemvMode : std::uint8_t {
  store,       // out[:, offset_i + j] = x . W_i[j]
  accumulate,  // out[:, j] += x . W_0[j]
  swiglu,      // out[:, j] = silu(x . W_0[j]) * (x . W_1[j])
  qkv_rope,    // store of [W_q; W_k; W_v], q and k rotated (RoPE), k and v also to the KV pools
};

// The qkv_rope epilogue's operands: row r of the output is [q (q_heads * head_dim) | k (k_heads
// * head_dim) | v]; its q and k pairs are rotated by positions[r] (each warp computes the two
// columns of one pair), then k and v are also written to row slots[r] of k_pool / v_pool (a
// negative slot skips them).
struct GemvRopeKv {
  const std::int32_t* positions = nullptr;
  const std::int32_t* slots = nullptr;
  __nv_bfloat16* k_pool = nullptr;  // (., k_heads * head_dim)
  __nv_bfloat16* v_pool = nullptr;  // (., v width)
  int q_heads = 0, k_heads = 0, head_dim = 0;
  double log_theta = 0.0;
  bool interleaved = true;
  // Set by launch_gemv: whether the split-K kernel computes its blocks' rotations before its
  // products (on unless the environment sets DIFFTX_GEMV_ROPE_TABLE=0, for measurement).
  bool table = true;
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
  GemvRopeKv rope;  // qkv_rope mode only
  // Set by launch_gemv: whether warps load their first weights before waiting on the previous
  // kernel (on unless the environment sets DIFFTX_GEMV_PRELOAD=0). The contract that comes with
  // it: the weights must not be written by the kernel launched just before on the stream (every
  // caller reads weights written long before; x, the norm gain and the outputs are touched only
  // after the wait).
  bool preload = true;
};

// Whether the kernel takes these operands: n <= kGemvDefaultRows (or DIFFTX_GEMV_MAX_ROWS), k % 8
// == 0, 16-byte aligned x / weights and row strides; with a norm: store, swiglu or qkv_rope mode,
// xn and rstd given, x rows contiguous (ldx == k); qkv_rope: three weights of q_heads / k_heads
// whole heads and an even v width, bf16 out, positions, slots and pools given.
bool gemv_supported(const GemvArgs& a);
void launch_gemv(const GemvArgs& a, cudaStream_t stream);

}  // namespace difftx::cuda
