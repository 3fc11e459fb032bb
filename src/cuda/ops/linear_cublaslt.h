// Linear layer on CUDA through cuBLASLt: out = x W^T, dx = dout W (= or +=), dW += dout^T x.
// bf16 (or f32) operands, fp32 accumulation; dW is always f32 and accumulated by the matmul
// itself (beta = 1), as is dx when accumulate_dx (no separate add pass). Owns the cuBLASLt
// handle and workspace (RAII) and caches the heuristic's algorithm per problem. Raw device
// pointers: the backend's linear entry checks the tensors.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <tuple>

#include "difftx/cuda/common/scalar_type.h"

namespace difftx::cuda {

class CublasLtLinear {
 public:
  explicit CublasLtLinear(cudaStream_t stream);
  ~CublasLtLinear();
  CublasLtLinear(const CublasLtLinear&) = delete;
  CublasLtLinear& operator=(const CublasLtLinear&) = delete;

  // x (n, k), w (m, k), out (n, m): all of `type` (bf16 or f32).
  void forward(const void* x, const void* w, void* out, ScalarType type, std::int64_t n,
               std::int64_t k, std::int64_t m);
  // x, w as in the forward; dout (n, m) and dx (n, k) of `type`, dx = (or += when
  // accumulate_dx) dout w; dw (m, k) f32 += dout^T x.
  void backward(const void* x, const void* w, const void* dout, void* dx, float* dw,
                ScalarType type, std::int64_t n, std::int64_t k, std::int64_t m,
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
