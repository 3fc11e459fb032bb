// CPU RMSNorm over the last dim: out = scale * x * rstd * weight, rstd = 1/sqrt(mean(x^2)+eps).
#include <cmath>
#include <vector>

#include "cpu_ops.h"

namespace difftx::cpu {

template <typename T>
void rmsnorm_forward(const T* x, const T* weight, i64 n, i64 c, double eps, double scale, T* out,
                     T* rstd) {
#pragma omp parallel for if (n * c > 32768)
  for (i64 i = 0; i < n; ++i) {
    const T* xi = x + i * c;
    double ss = 0;
    for (i64 j = 0; j < c; ++j) ss += double(xi[j]) * double(xi[j]);
    double r = 1.0 / std::sqrt(ss / double(c) + eps);
    rstd[i] = T(r);
    T* oi = out + i * c;
    for (i64 j = 0; j < c; ++j) {
      double w = weight ? double(weight[j]) : 1.0;
      oi[j] = T(scale * double(xi[j]) * r * w);
    }
  }
}

template <typename T>
void rmsnorm_backward(const T* x, const T* weight, const T* rstd, i64 n, i64 c, double scale,
                      const T* dout, T* dx, T* dweight) {
  // xhat = x * rstd; g = dout * weight * scale; dx = rstd * (g - xhat * mean(g * xhat)).
#pragma omp parallel for if (n * c > 32768)
  for (i64 i = 0; i < n; ++i) {
    const T* xi = x + i * c;
    const T* gi = dout + i * c;
    double r = double(rstd[i]);
    double dot = 0;
    for (i64 j = 0; j < c; ++j) {
      double w = weight ? double(weight[j]) : 1.0;
      dot += double(gi[j]) * w * scale * double(xi[j]) * r;
    }
    double mean = dot / double(c);
    T* dxi = dx + i * c;
    for (i64 j = 0; j < c; ++j) {
      double w = weight ? double(weight[j]) : 1.0;
      double xhat = double(xi[j]) * r;
      dxi[j] = T(r * (double(gi[j]) * w * scale - xhat * mean));
    }
  }
  if (dweight) {
    // Column sums, parallel over columns so no two threads write one element.
#pragma omp parallel for if (n * c > 32768)
    for (i64 j = 0; j < c; ++j) {
      double acc = 0;
      for (i64 i = 0; i < n; ++i)
        acc += double(dout[i * c + j]) * double(x[i * c + j]) * double(rstd[i]);
      dweight[j] += T(acc * scale);
    }
  }
}

template void rmsnorm_forward<float>(const float*, const float*, i64, i64, double, double, float*,
                                     float*);
template void rmsnorm_forward<double>(const double*, const double*, i64, i64, double, double,
                                      double*, double*);
template void rmsnorm_backward<float>(const float*, const float*, const float*, i64, i64, double,
                                      const float*, float*, float*);
template void rmsnorm_backward<double>(const double*, const double*, const double*, i64, i64,
                                       double, const double*, double*, double*);

}  // namespace difftx::cpu
