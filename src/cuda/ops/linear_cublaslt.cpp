// Linear layer through cuBLASLt (see linear_cublaslt.h): the row-major to column-major mapping
// of the three products and algorithm selection (the heuristic's first choice for the problem
// and the operands' actual alignment, cached).
//
// Row-major (r, c) with leading dimension c is column-major (c, r). With x (N,K), w (M,K),
// dout (N,M):
//   out (N,M) = x w^T      ->  col-major out^T (M,N) = w^T[stored (K,M)]^T . x^T (K,N)
//   dx  (N,K) = dout w     ->  col-major dx^T (K,N)  = w^T (K,M) . dout^T (M,N)
//   dw  (M,K) += dout^T x  ->  col-major dw^T (K,M) += x^T (K,N) . (dout^T (M,N))^T
#include "linear_cublaslt.h"

#include <memory>

#include "difftx/core/error.h"
#include "difftx/cuda/common/check.h"

namespace difftx::cuda {
namespace {

constexpr std::size_t kWorkspaceBytes = std::size_t(32) << 20;  // cuBLAS's advice for Hopper

cudaDataType_t cuda_type(const char* op, ScalarType type) {
  if (type == ScalarType::bf16) return CUDA_R_16BF;
  if (type == ScalarType::f32) return CUDA_R_32F;
  throw_op_error(op, "element type must be f32 or bf16");
}

int pointer_alignment(const void* p) {
  auto v = reinterpret_cast<std::uintptr_t>(p);
  int a = 256;
  while (a > 1 && (v % static_cast<std::uintptr_t>(a)) != 0) a /= 2;
  return a;
}

template <typename T, cublasStatus_t (*Destroy)(T)>
struct LtDeleter {
  void operator()(T p) const {
    if (p) Destroy(p);
  }
};
using MatmulDesc = std::unique_ptr<std::remove_pointer_t<cublasLtMatmulDesc_t>,
                                   LtDeleter<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy>>;
using Layout = std::unique_ptr<std::remove_pointer_t<cublasLtMatrixLayout_t>,
                               LtDeleter<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy>>;
using Preference =
    std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>,
                    LtDeleter<cublasLtMatmulPreference_t, cublasLtMatmulPreferenceDestroy>>;

Layout make_layout(const char* op, cudaDataType_t type, std::int64_t rows, std::int64_t cols,
                   std::int64_t ld) {
  cublasLtMatrixLayout_t raw = nullptr;
  DIFFTX_CUBLAS_CHECK(op, cublasLtMatrixLayoutCreate(&raw, type, static_cast<std::uint64_t>(rows),
                                                     static_cast<std::uint64_t>(cols), ld));
  return Layout(raw);
}

}  // namespace

CublasLtLinear::CublasLtLinear(cudaStream_t stream) : stream_(stream) {
  DIFFTX_CUBLAS_CHECK("linear", cublasLtCreate(&lt_));
  cudaError_t status = cudaMalloc(&workspace_, kWorkspaceBytes);
  if (status != cudaSuccess) {
    cublasLtDestroy(lt_);
    throw_cuda_error("linear", "cudaMalloc(cuBLASLt workspace)", status, __FILE__, __LINE__);
  }
  workspace_bytes_ = kWorkspaceBytes;
}

CublasLtLinear::~CublasLtLinear() {
  // Destructors must not throw: statuses are ignored. Pending products using the workspace
  // finish first.
  cudaStreamSynchronize(stream_);
  if (lt_) cublasLtDestroy(lt_);
  if (workspace_) cudaFree(workspace_);
}

void CublasLtLinear::forward(const void* x, const void* w, void* out, ScalarType type,
                             std::int64_t n, std::int64_t k, std::int64_t m) {
  const char* op = "linear_forward";
  if (n == 0 || m == 0) return;
  const cudaDataType_t t = cuda_type(op, type);
  run(op, Gemm{CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, w, t, k, x, t, k, out, t, m, 0.f});
}

void CublasLtLinear::backward(const void* x, const void* w, const void* dout, void* dx, float* dw,
                              ScalarType type, std::int64_t n, std::int64_t k, std::int64_t m,
                              bool accumulate_dx) {
  const char* op = "linear_backward";
  if (n == 0) return;
  const cudaDataType_t t = cuda_type(op, type);
  if (m == 0) {
    if (!accumulate_dx) {
      const std::size_t bytes = std::size_t(n) * std::size_t(k) * scalar_type_size(type);
      DIFFTX_CUDA_CHECK(op, cudaMemsetAsync(dx, 0, bytes, stream_));
    }
    return;
  }
  // dx^T (K,N) = w^T (K,M) . dout^T (M,N)
  run(op, Gemm{CUBLAS_OP_N, CUBLAS_OP_N, k, n, m, w, t, k, dout, t, m, dx, t, k,
               accumulate_dx ? 1.f : 0.f});
  // dw^T (K,M) += x^T (K,N) . dout (N,M)
  run(op, Gemm{CUBLAS_OP_N, CUBLAS_OP_T, k, m, n, x, t, k, dout, t, m, dw, CUDA_R_32F, k, 1.f});
}

void CublasLtLinear::run(const char* op, const Gemm& g) {
  const int align_a = pointer_alignment(g.a), align_b = pointer_alignment(g.b),
            align_c = pointer_alignment(g.c);
  const AlgoKey key{g.trans_a, g.trans_b, g.m,   g.n,         g.k,     g.a_type, g.b_type, g.c_type,
                    g.lda,     g.ldb,     g.ldc, g.beta != 0, align_a, align_b,  align_c};

  MatmulDesc desc;
  {
    cublasLtMatmulDesc_t raw = nullptr;
    DIFFTX_CUBLAS_CHECK(op, cublasLtMatmulDescCreate(&raw, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    desc.reset(raw);
  }
  DIFFTX_CUBLAS_CHECK(op, cublasLtMatmulDescSetAttribute(desc.get(), CUBLASLT_MATMUL_DESC_TRANSA,
                                                         &g.trans_a, sizeof(g.trans_a)));
  DIFFTX_CUBLAS_CHECK(op, cublasLtMatmulDescSetAttribute(desc.get(), CUBLASLT_MATMUL_DESC_TRANSB,
                                                         &g.trans_b, sizeof(g.trans_b)));
  const bool ta = g.trans_a != CUBLAS_OP_N, tb = g.trans_b != CUBLAS_OP_N;
  Layout a = make_layout(op, g.a_type, ta ? g.k : g.m, ta ? g.m : g.k, g.lda);
  Layout b = make_layout(op, g.b_type, tb ? g.n : g.k, tb ? g.k : g.n, g.ldb);
  Layout c = make_layout(op, g.c_type, g.m, g.n, g.ldc);

  auto found = algos_.find(key);
  if (found == algos_.end()) {
    Preference pref;
    {
      cublasLtMatmulPreference_t raw = nullptr;
      DIFFTX_CUBLAS_CHECK(op, cublasLtMatmulPreferenceCreate(&raw));
      pref.reset(raw);
    }
    const std::uint64_t ws = workspace_bytes_;
    const std::uint32_t aa = std::uint32_t(align_a), ab = std::uint32_t(align_b),
                        ac = std::uint32_t(align_c);
    DIFFTX_CUBLAS_CHECK(op,
                        cublasLtMatmulPreferenceSetAttribute(
                            pref.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    DIFFTX_CUBLAS_CHECK(
        op, cublasLtMatmulPreferenceSetAttribute(
                pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof(aa)));
    DIFFTX_CUBLAS_CHECK(
        op, cublasLtMatmulPreferenceSetAttribute(
                pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof(ab)));
    DIFFTX_CUBLAS_CHECK(
        op, cublasLtMatmulPreferenceSetAttribute(
                pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof(ac)));
    DIFFTX_CUBLAS_CHECK(
        op, cublasLtMatmulPreferenceSetAttribute(
                pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac, sizeof(ac)));
    cublasLtMatmulHeuristicResult_t result{};
    int count = 0;
    const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(
        lt_, desc.get(), a.get(), b.get(), c.get(), c.get(), pref.get(), 1, &result, &count);
    if (status == CUBLAS_STATUS_NOT_SUPPORTED || (status == CUBLAS_STATUS_SUCCESS && count == 0)) {
      fail(
          "{}: cuBLASLt has no algorithm for m={} n={} k={} (lda={} ldb={} ldc={}, alignments "
          "{}/{}/{} bytes)",
          op, g.m, g.n, g.k, g.lda, g.ldb, g.ldc, align_a, align_b, align_c);
    }
    if (status != CUBLAS_STATUS_SUCCESS) {
      throw_cublas_error(op, "cublasLtMatmulAlgoGetHeuristic", status, __FILE__, __LINE__);
    }
    found = algos_.emplace(key, result.algo).first;
  }
  const float alpha = 1.f;
  DIFFTX_CUBLAS_CHECK(
      op, cublasLtMatmul(lt_, desc.get(), &alpha, g.a, a.get(), g.b, b.get(), &g.beta, g.c, c.get(),
                         g.c, c.get(), &found->second, workspace_, workspace_bytes_, stream_));
}

}  // namespace difftx::cuda
