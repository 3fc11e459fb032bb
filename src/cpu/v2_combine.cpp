// CPU DIFF V2 combination: out_i = a_{2i} - sigmoid(gate_i) * a_{2i+1}, per token and head.
#include <cmath>

#include "cpu_ops.h"

namespace difftx::cpu {

template <typename T>
void v2_combine_forward(const T* a, const T* gate_logits, i64 n, int h, int d, T* out) {
#pragma omp parallel for if (n * h * d > 65536)
  for (i64 r = 0; r < n; ++r) {
    for (int i = 0; i < h; ++i) {
      double sig = 1.0 / (1.0 + std::exp(-double(gate_logits[r * h + i])));
      const T* a1 = a + (r * 2 * h + 2 * i) * d;  // (n, 2h, d)
      const T* a2 = a1 + d;
      T* o = out + (r * h + i) * d;  // (n, h, d)
      for (int c = 0; c < d; ++c) o[c] = T(double(a1[c]) - sig * double(a2[c]));
    }
  }
}

template <typename T>
void v2_combine_backward(const T* a, const T* gate_logits, const T* dout, i64 n, int h, int d,
                         T* da, T* dgate_logits) {
#pragma omp parallel for if (n * h * d > 65536)
  for (i64 r = 0; r < n; ++r) {
    for (int i = 0; i < h; ++i) {
      double sig = 1.0 / (1.0 + std::exp(-double(gate_logits[r * h + i])));
      const T* a2 = a + (r * 2 * h + 2 * i + 1) * d;
      const T* go = dout + (r * h + i) * d;
      T* da1 = da + (r * 2 * h + 2 * i) * d;
      T* da2 = da1 + d;
      double dsig = 0;
      for (int c = 0; c < d; ++c) {
        da1[c] = go[c];
        da2[c] = T(-sig * double(go[c]));
        dsig -= double(go[c]) * double(a2[c]);
      }
      dgate_logits[r * h + i] = T(dsig * sig * (1.0 - sig));
    }
  }
}

template void v2_combine_forward<float>(const float*, const float*, i64, int, int, float*);
template void v2_combine_forward<double>(const double*, const double*, i64, int, int, double*);
template void v2_combine_backward<float>(const float*, const float*, const float*, i64, int, int,
                                         float*, float*);
template void v2_combine_backward<double>(const double*, const double*, const double*, i64, int,
                                          int, double*, double*);

}  // namespace difftx::cpu
