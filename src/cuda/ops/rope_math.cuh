// The rotation of one RoPE pair at a token position, shared by the kernels that apply RoPE at
// per-token positions (rope_positions.cu, and the QKV projection's epilogue in gemv.cu) so they
// agree bit for bit: angle position * theta^(-2i/D) formed and reduced modulo 2 pi in f64, its
// sine and cosine taken in f32 (the arithmetic of rope.cuh).
#pragma once

#include <cstdint>

namespace difftx::cuda {

// The cosine and sine of pair i's angle at `position`.
__device__ __forceinline__ void rope_angle(int i, int head_dim, std::int32_t position,
                                           double log_theta, float& c, float& s) {
  constexpr double kTwoPi = 6.283185307179586476925286766559;
  const double inv_freq = exp(-2.0 * i / head_dim * log_theta);
  double angle = double(position) * inv_freq;
  angle -= kTwoPi * rint(angle / kTwoPi);
  sincosf(static_cast<float>(angle), &s, &c);
}

// Rotates (x0, x1) by the angle of cosine c and sine s.
__device__ __forceinline__ void rope_apply(float& x0, float& x1, float c, float s) {
  const float y0 = x0 * c - x1 * s, y1 = x0 * s + x1 * c;
  x0 = y0;
  x1 = y1;
}

// Rotates (x0, x1), pair i of a head_dim-sized component, by `position`.
__device__ __forceinline__ void rope_rotate(float& x0, float& x1, int i, int head_dim,
                                            std::int32_t position, double log_theta) {
  float c, s;
  rope_angle(i, head_dim, position, log_theta, c, s);
  rope_apply(x0, x1, c, s);
}

// The element offsets within a component of pair i: interleaved (2i, 2i + 1), half-split
// (i, i + head_dim / 2).
__device__ __forceinline__ int rope_first(int i, int head_dim, bool interleaved) {
  return interleaved ? 2 * i : i;
}
__device__ __forceinline__ int rope_second(int i, int head_dim, bool interleaved) {
  return interleaved ? 2 * i + 1 : i + head_dim / 2;
}

}  // namespace difftx::cuda
