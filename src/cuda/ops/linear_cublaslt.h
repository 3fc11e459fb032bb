// Linear layer on CUDA through cuBLASLt: out = x W^T, dx = dout W (= or +=), dW += dout^T x.
// bf16 (or f32) operands, fp32 accumulation; dW is always f32 and accumulated by the matmul
// itself (beta = 1), as is dx when accumulate_dx (no separate add pass). Owns the cuBLASLt
// handle and workspace (RAII) and caches the heuristic's algorithm per problem.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <tuple>

#include "difftx/core/tensor.h"

namespace difftx::cuda {

class CublasLtLinear {
 public:
  explicit CublasLtLinear(cudaStream_t stream);
  ~CublasLtLinear();
  CublasLtLinear(const CublasLtLinear&) = delete;
  CublasLtLinear& operator=(const CublasLtLinear&) = delete;

  // x (N, K), w (M, K), out (N, M): bf16 or f32, one dtype.
  void forward(const Tensor& x, const Tensor& w, Tensor& out);
  // out (N, M) at `out`, rows `ld_out` elements apart, of out_dtype (x's dtype or f32):
  // = x W^T (beta 0) or += x W^T (beta 1). For column blocks of a wider output and residual adds.
  void forward_into(const Tensor& x, const Tensor& w, void* out, DType out_dtype,
                    std::int64_t ld_out, float beta);
  // dout (N, M), dx (N, K) of x's dtype; dw (M, K) f32 +=.
  void backward(const Tensor& x, const Tensor& w, const Tensor& dout, Tensor& dx, Tensor& dw,
                bool accumulate_dx);

 private:
  // Column-major C (m, n) = op(A) op(B) + beta C, as cuBLAS sees it.
  struct Gemm {
    cublasOperation_t trans_a, trans_b;
    std::int64_t m, n, k;
    const void* a;
    cudaDataType_t a_type;
    std::int64_t lda;
    const void* b;
    cudaDataType_t b_type;
    std::int64_t ldb;
    void* c;
    cudaDataType_t c_type;
    std::int64_t ldc;
    float beta;
  };
  using AlgoKey = std::tuple<int, int, std::int64_t, std::int64_t, std::int64_t, int, int, int,
                             std::int64_t, std::int64_t, std::int64_t, bool, int, int, int>;

  void run(const char* op, const Gemm& g);

  cudaStream_t stream_;
  cublasLtHandle_t lt_ = nullptr;
  void* workspace_ = nullptr;
  std::size_t workspace_bytes_ = 0;
  std::map<AlgoKey, cublasLtMatmulAlgo_t> algos_;
};

}  // namespace difftx::cuda
