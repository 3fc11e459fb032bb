// CPU linear layer through OpenBLAS: out = x W^T (also into column blocks, or accumulated),
// dx = dout W, dW += dout^T x.
#include <cblas.h>

#include "cpu_ops.h"

namespace difftx::cpu {
namespace {

void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, i64 m, i64 n, i64 k, float alpha, const float* a,
          i64 lda, const float* b, i64 ldb, float beta, float* c, i64 ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta,
              c, int(ldc));
}
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, i64 m, i64 n, i64 k, double alpha,
          const double* a, i64 lda, const double* b, i64 ldb, double beta, double* c, i64 ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta,
              c, int(ldc));
}

}  // namespace

template <typename T>
void linear_forward(const T* x, const T* w, i64 n, i64 k, i64 m, T* out) {
  if (n == 0 || m == 0) return;
  gemm(CblasNoTrans, CblasTrans, n, m, k, T(1), x, k, w, k, T(0), out, m);  // (n,k)(k,m)
}

template <typename T>
void linear_forward_strided(const T* x, const T* w, i64 n, i64 k, i64 m, T* out, i64 ldo,
                            bool accumulate) {
  if (n == 0 || m == 0) return;
  gemm(CblasNoTrans, CblasTrans, n, m, k, T(1), x, k, w, k, accumulate ? T(1) : T(0), out, ldo);
}

template <typename T>
void linear_backward(const T* x, const T* w, const T* dout, i64 n, i64 k, i64 m, T* dx, T* dw,
                     bool accumulate_dx) {
  if (n == 0) return;
  gemm(CblasNoTrans, CblasNoTrans, n, k, m, T(1), dout, m, w, k, accumulate_dx ? T(1) : T(0), dx,
       k);
  gemm(CblasTrans, CblasNoTrans, m, k, n, T(1), dout, m, x, k, T(1), dw, k);  // (m,n)(n,k)
}

template void linear_forward<float>(const float*, const float*, i64, i64, i64, float*);
template void linear_forward<double>(const double*, const double*, i64, i64, i64, double*);
template void linear_forward_strided<float>(const float*, const float*, i64, i64, i64, float*, i64,
                                            bool);
template void linear_forward_strided<double>(const double*, const double*, i64, i64, i64, double*,
                                             i64, bool);
template void linear_backward<float>(const float*, const float*, const float*, i64, i64, i64,
                                     float*, float*, bool);
template void linear_backward<double>(const double*, const double*, const double*, i64, i64, i64,
                                      double*, double*, bool);

}  // namespace difftx::cpu
