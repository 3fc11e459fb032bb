// CPU rotary position embedding, GPT-J interleaved pairs (2i, 2i+1) or NeoX half-split (i, i+D/2),
// at consecutive positions from an offset (training) or at per-token positions (the engine).
#include <cmath>
#include <vector>

#include "cpu_ops.h"

namespace difftx::cpu {

template <typename T>
void rope(T* x, int batch, int seq, int heads, int head_dim, i64 row_stride, int pos_offset,
          double theta, RopeStyle style, bool inverse) {
  const int half = head_dim / 2;
  std::vector<double> inv_freq(static_cast<std::size_t>(half));
  for (int i = 0; i < half; ++i) inv_freq[i] = std::pow(theta, -2.0 * i / head_dim);
  const double sign = inverse ? -1.0 : 1.0;
#pragma omp parallel for collapse(2) if (i64(batch) * seq * heads * head_dim > 65536)
  for (int b = 0; b < batch; ++b) {
    for (int t = 0; t < seq; ++t) {
      T* row = x + (i64(b) * seq + t) * row_stride;
      double pos = double(pos_offset + t);
      for (int i = 0; i < half; ++i) {
        double angle = pos * inv_freq[i];
        double c = std::cos(angle), s = sign * std::sin(angle);
        for (int h = 0; h < heads; ++h) {
          T* v = row + i64(h) * head_dim;
          int i0 = style == RopeStyle::interleaved ? 2 * i : i;
          int i1 = style == RopeStyle::interleaved ? 2 * i + 1 : i + half;
          double x0 = double(v[i0]), x1 = double(v[i1]);
          v[i0] = T(x0 * c - x1 * s);
          v[i1] = T(x0 * s + x1 * c);
        }
      }
    }
  }
}

// The engine's form: row n rotated by positions[n] (same arithmetic as rope above).
template <typename T>
void rope_positions(T* x, i64 n, i64 row_stride, const std::int32_t* positions, int heads,
                    int head_dim, double theta, RopeStyle style) {
  const int half = head_dim / 2;
  std::vector<double> inv_freq(static_cast<std::size_t>(half));
  for (int i = 0; i < half; ++i) inv_freq[i] = std::pow(theta, -2.0 * i / head_dim);
  for (i64 r = 0; r < n; ++r) {
    T* row = x + r * row_stride;
    const double pos = double(positions[r]);
    for (int i = 0; i < half; ++i) {
      const double angle = pos * inv_freq[i];
      const double c = std::cos(angle), s = std::sin(angle);
      const int i0 = style == RopeStyle::interleaved ? 2 * i : i;
      const int i1 = style == RopeStyle::interleaved ? 2 * i + 1 : i + half;
      for (int h = 0; h < heads; ++h) {
        T* v = row + i64(h) * head_dim;
        const double x0 = double(v[i0]), x1 = double(v[i1]);
        v[i0] = T(x0 * c - x1 * s);
        v[i1] = T(x0 * s + x1 * c);
      }
    }
  }
}

template void rope<float>(float*, int, int, int, int, i64, int, double, RopeStyle, bool);
template void rope<double>(double*, int, int, int, int, i64, int, double, RopeStyle, bool);
template void rope_positions<float>(float*, i64, i64, const std::int32_t*, int, int, double,
                                    RopeStyle);
template void rope_positions<double>(double*, i64, i64, const std::int32_t*, int, int, double,
                                     RopeStyle);

}  // namespace difftx::cpu
