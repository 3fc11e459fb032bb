// The materialized ("plain") attention of the evaluation probes: which key component and value
// head each score map reads, which entries a query may see, and the |x| histogram's bins. Plain
// inline functions over AttentionGeometry, standard headers only (the CUDA kernels include it).
//
// A probe computes attention as explicit tensors instead of the fused kernels:
//   scores (B, Hs, T, S) = scale * q_m . k_kc(m)      Hs = g.q_heads score maps, S = g.kv_len
//   (optional) dynamic absmax quantization of scores
//   probs  (B, Hs, T, S) = row softmax of scores over the visible entries
//   out    = probs x V with the attention kind's combination (DIFF V1: (A1 - lambda A2) V,
//            DIFF V2: a_2i - sigmoid(gate) a_2i+1, softmax: P V)
// Entries a query may not see (key s > q_offset + t) are 0 in scores and probs and are left out
// of every statistic.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "difftx/model/attention_geometry.h"

// Host and device (nvcc) functions.
#ifdef __CUDACC__
#define DIFFTX_PROBE_HD __host__ __device__
#else
#define DIFFTX_PROBE_HD
#endif

namespace difftx {

// How the score maps combine into head outputs.
enum class ProbeCombine : int {
  softmax = 0,  // out_m = P_m V_kv(m), one output head per map
  diff_v1 = 1,  // out_i = (P_2i - lambda P_2i+1) V_j, j = i / n_rep (value dim 2d)
  diff_v2 = 2,  // out_i = P_2i V - sigmoid(gate_i) P_2i+1 V (the pair shares its kv head)
};

// Key component read by score map m. DIFF V1 pairs map 2i (A1) / 2i+1 (A2) of head i with key
// components 2j / 2j+1 of group j = i / n_rep; the others use GQA: kv head m / (Hq / Hk).
DIFFTX_PROBE_HD inline int probe_key_component(const AttentionGeometry& g, ProbeCombine c, int m) {
  const int group = g.q_heads / g.k_heads;  // V1: heads per kv group (q_heads/2 over k_heads/2)
  if (c == ProbeCombine::diff_v1) return 2 * ((m / 2) / group) + (m % 2);
  return m / group;
}

// Output heads: the score maps (softmax) or their pairs (DIFF V1 and V2).
DIFFTX_PROBE_HD inline int probe_out_heads(const AttentionGeometry& g, ProbeCombine c) {
  return c == ProbeCombine::softmax ? g.q_heads : g.q_heads / 2;
}

// Value head read by output head i.
DIFFTX_PROBE_HD inline int probe_value_head(const AttentionGeometry& g, ProbeCombine c, int i) {
  const int maps_per_value = g.q_heads / g.v_heads;
  if (c == ProbeCombine::softmax) return i / maps_per_value;
  return (2 * i) / maps_per_value;  // V1: i / n_rep with n_rep = (q_heads/2) / v_heads
}

// Keys that query t (0-based within this call) sees: 0 .. probe_visible(g, t) - 1.
DIFFTX_PROBE_HD inline int probe_visible(const AttentionGeometry& g, int t) {
  return g.kv_len < g.q_offset + t + 1 ? g.kv_len : g.q_offset + t + 1;
}

// |x| histogram: the bin of a value is the top 15 bits of |x| as an IEEE-754 float32 (exponent
// and the first 7 mantissa bits), so bin edges are exact binary values, every float falls in one
// of 32768 bins, and a bin spans a factor of at most 1 + 2^-7. Reporting a bin's midpoint
// (lower + upper) / 2 is off by at most 2^-8 (0.39%) of the value.
inline constexpr int kAbsHistogramBins = 32768;

inline int abs_histogram_bin(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return static_cast<int>((bits & 0x7fffffffu) >> 16);
}

// Smallest value of bin b (bin 0 starts at +0).
inline float abs_histogram_bin_lower(int b) {
  const std::uint32_t bits = static_cast<std::uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &bits, sizeof x);
  return x;
}

// Smallest value of bin b + 1, the bin's exclusive upper edge (infinity for the last finite bin).
inline float abs_histogram_bin_upper(int b) {
  return abs_histogram_bin_lower(b + 1);
}

}  // namespace difftx
