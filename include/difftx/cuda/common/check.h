// Error checks for CUDA runtime and cuBLAS calls (the cuda_common layer, under ops, attention and
// backend): every failing call throws difftx::Error with the op that made it, the call's text,
// the error's name and the source location. Usable from .cu files (it pulls in no fmt, which
// nvcc cannot compile in C++20 mode).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

namespace difftx::cuda {

[[noreturn]] void throw_cuda_error(const char* op, const char* call, cudaError_t error,
                                   const char* file, int line);
[[noreturn]] void throw_cublas_error(const char* op, const char* call, cublasStatus_t status,
                                     const char* file, int line);
// Throws difftx::Error("<op>: <message>"), for argument checks in code that cannot use fmt.
[[noreturn]] void throw_op_error(const char* op, const char* message);

}  // namespace difftx::cuda

// DIFFTX_CUDA_CHECK("rmsnorm_forward", cudaMemsetAsync(...));
#define DIFFTX_CUDA_CHECK(op, call)                                                           \
  do {                                                                                        \
    cudaError_t difftx_cuda_status_ = (call);                                                 \
    if (difftx_cuda_status_ != cudaSuccess)                                                   \
      ::difftx::cuda::throw_cuda_error((op), #call, difftx_cuda_status_, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports launch-configuration errors (asynchronous faults surface at
// the next synchronizing call, which is checked too).
#define DIFFTX_CUDA_CHECK_LAUNCH(op, kernel_name)                                           \
  do {                                                                                      \
    cudaError_t difftx_cuda_status_ = cudaGetLastError();                                   \
    if (difftx_cuda_status_ != cudaSuccess)                                                 \
      ::difftx::cuda::throw_cuda_error((op), "launch of " kernel_name, difftx_cuda_status_, \
                                       __FILE__, __LINE__);                                 \
  } while (0)

#define DIFFTX_CUBLAS_CHECK(op, call)                                                             \
  do {                                                                                            \
    cublasStatus_t difftx_cublas_status_ = (call);                                                \
    if (difftx_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                           \
      ::difftx::cuda::throw_cublas_error((op), #call, difftx_cublas_status_, __FILE__, __LINE__); \
  } while (0)
