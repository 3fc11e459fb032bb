// CPU SwiGLU gate: out = silu(gate) * up, elementwise.
#include <cmath>

#include "cpu_ops.h"

namespace difftx::cpu {

template <typename T>
void swiglu_forward(const T* gate, const T* up, i64 n, T* out) {
#pragma omp parallel for if (n > 65536)
  for (i64 i = 0; i < n; ++i) {
    double g = double(gate[i]);
    double sig = 1.0 / (1.0 + exp_in<T>(-g));
    out[i] = T(g * sig * double(up[i]));
  }
}

template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dout, i64 n, T* dgate, T* dup) {
#pragma omp parallel for if (n > 65536)
  for (i64 i = 0; i < n; ++i) {
    double g = double(gate[i]);
    double sig = 1.0 / (1.0 + exp_in<T>(-g));
    double silu = g * sig;
    double dsilu = sig * (1.0 + g * (1.0 - sig));
    dgate[i] = T(double(dout[i]) * double(up[i]) * dsilu);
    dup[i] = T(double(dout[i]) * silu);
  }
}

template void swiglu_forward<float>(const float*, const float*, i64, float*);
template void swiglu_forward<double>(const double*, const double*, i64, double*);
template void swiglu_backward<float>(const float*, const float*, const float*, i64, float*, float*);
template void swiglu_backward<double>(const double*, const double*, const double*, i64, double*,
                                      double*);

}  // namespace difftx::cpu
