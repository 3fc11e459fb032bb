// Device-side helpers shared by the CUDA op kernels (private to src/cuda/ops): dtype dispatch,
// conversions between bf16, f32 and f64, 16-byte packs and warp/block reductions. Error checks,
// scalar types and launch arithmetic come from the cuda_common layer.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "difftx/cuda/common/check.h"
#include "difftx/cuda/common/launch.h"
#include "difftx/cuda/common/scalar_type.h"

namespace difftx::cuda {

using bf16 = __nv_bfloat16;
using i64 = std::int64_t;

// Arithmetic type for an element type: f32 for f32/bf16, f64 for f64.
template <typename T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <typename To, typename From>
__host__ __device__ __forceinline__ To convert_to(From x) {
  if constexpr (std::is_same_v<To, From>) {
    return x;
  } else if constexpr (std::is_same_v<From, bf16>) {
    return static_cast<To>(__bfloat162float(x));
  } else if constexpr (std::is_same_v<To, bf16>) {
    if constexpr (std::is_same_v<From, double>) {
      return __double2bfloat16(x);
    } else {
      return __float2bfloat16_rn(static_cast<float>(x));
    }
  } else {
    return static_cast<To>(x);
  }
}

// Sixteen bytes of elements, for vectorised loads and stores.
template <typename T>
struct alignas(16) Pack {
  static constexpr int size = 16 / static_cast<int>(sizeof(T));
  T v[size];
};

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `scratch` holds 32 values in shared memory; the call begins with a barrier, so consecutive
// calls can share one scratch.
template <typename A>
__device__ __forceinline__ A block_sum(A v, A* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  A total = lane < warps ? scratch[lane] : A(0);
  return warp_sum(total);
}

}  // namespace difftx::cuda

// Runs the statement list with T bound to the C++ type of a floating ScalarType (f32, bf16,
// f64); other types throw naming `op`.
#define DIFFTX_DISPATCH_FLOAT(op, scalar, T, ...)                       \
  switch (scalar) {                                                     \
    case ::difftx::cuda::ScalarType::f32: {                             \
      using T = float;                                                  \
      __VA_ARGS__;                                                      \
    } break;                                                            \
    case ::difftx::cuda::ScalarType::bf16: {                            \
      using T = ::difftx::cuda::bf16;                                   \
      __VA_ARGS__;                                                      \
    } break;                                                            \
    case ::difftx::cuda::ScalarType::f64: {                             \
      using T = double;                                                 \
      __VA_ARGS__;                                                      \
    } break;                                                            \
    default:                                                            \
      ::difftx::cuda::throw_op_error((op), "unsupported element type"); \
  }

// Same for the two types of activations and 1-D weights on CUDA: f32 and bf16.
#define DIFFTX_DISPATCH_F32_BF16(op, scalar, T, ...)                            \
  switch (scalar) {                                                             \
    case ::difftx::cuda::ScalarType::f32: {                                     \
      using T = float;                                                          \
      __VA_ARGS__;                                                              \
    } break;                                                                    \
    case ::difftx::cuda::ScalarType::bf16: {                                    \
      using T = ::difftx::cuda::bf16;                                           \
      __VA_ARGS__;                                                              \
    } break;                                                                    \
    default:                                                                    \
      ::difftx::cuda::throw_op_error((op), "element type must be f32 or bf16"); \
  }
