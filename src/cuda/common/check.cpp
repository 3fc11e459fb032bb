// The throwing ends of the CUDA / cuBLAS error-check macros of include/difftx/cuda/common/check.h.
#include "difftx/cuda/common/check.h"

#include <cstring>

#include "difftx/core/error.h"

namespace difftx::cuda {
namespace {

const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

}  // namespace

void throw_cuda_error(const char* op, const char* call, cudaError_t error, const char* file,
                      int line) {
  fail("{}: CUDA call {} failed: {} ({}) at {}:{}", op, call, cudaGetErrorName(error),
       cudaGetErrorString(error), base_name(file), line);
}

void throw_cublas_error(const char* op, const char* call, cublasStatus_t status, const char* file,
                        int line) {
  fail("{}: cuBLAS call {} failed: {} ({}) at {}:{}", op, call, cublasLtGetStatusName(status),
       cublasLtGetStatusString(status), base_name(file), line);
}

void throw_op_error(const char* op, const char* message) {
  fail("{}: {}", op, message);
}

}  // namespace difftx::cuda
