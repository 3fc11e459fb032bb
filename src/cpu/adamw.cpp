// CPU AdamW with decoupled weight decay, in PyTorch's order: p *= 1 - lr*wd, then the Adam step.
#include <cmath>

#include "cpu_ops.h"

namespace difftx::cpu {

template <typename T>
void adamw_step(T* param, const T* grad, T* m, T* v, i64 n, double lr, double beta1, double beta2,
                double eps, double weight_decay, int step) {
  const double bc1 = 1.0 - std::pow(beta1, step);
  const double bc2 = 1.0 - std::pow(beta2, step);
#pragma omp parallel for if (n > 65536)
  for (i64 i = 0; i < n; ++i) {
    double g = double(grad[i]);
    double mi = beta1 * double(m[i]) + (1.0 - beta1) * g;
    double vi = beta2 * double(v[i]) + (1.0 - beta2) * g * g;
    m[i] = T(mi);
    v[i] = T(vi);
    double p = double(param[i]) * (1.0 - lr * weight_decay);
    p -= lr * (mi / bc1) / (std::sqrt(vi / bc2) + eps);
    param[i] = T(p);
  }
}

template void adamw_step<float>(float*, const float*, float*, float*, i64, double, double, double,
                                double, double, int);
template void adamw_step<double>(double*, const double*, double*, double*, i64, double, double,
                                 double, double, double, int);

}  // namespace difftx::cpu
