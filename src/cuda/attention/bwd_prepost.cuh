// Small memory-bound kernels around the backward main kernel: the preprocess (per-row
// D = rowsum(dO . O), lse converted to log2 units with padded rows, dlambda) and the final
// conversion of the fp32 dQ accumulator to bf16 in q's layout.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "mma.cuh"
#include "params.cuh"

namespace difftx::cuda::attn {

__device__ __forceinline__ float dot8(const uint4& a, const uint4& b) {
  const __nv_bfloat162* x = reinterpret_cast<const __nv_bfloat162*>(&a);
  const __nv_bfloat162* y = reinterpret_cast<const __nv_bfloat162*>(&b);
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 u = __bfloat1622float2(x[i]);
    const float2 w = __bfloat1622float2(y[i]);
    s = fmaf(u.x, w.x, s);
    s = fmaf(u.y, w.y, s);
  }
  return s;
}

// grid (t_pad / 8, heads, B), 256 threads: one warp per (row, head).
//   softmax: D = rowsum(dO . O).
//   DIFF V1: with r1 = rowsum(dO . out), r2 = rowsum(dO . out2): D1 = r1 + lambda r2
//   (O1 = out + lambda out2) and D2 = -lambda r2 (dA2 = -lambda dP); dlambda += -sum r2.
template <int kDV, bool kDiff>
__global__ void __launch_bounds__(256) attention_bwd_preprocess_kernel(const PreParams p) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int t = blockIdx.x * 8 + warp, head = blockIdx.y, b = blockIdx.z;
  float r1 = 0.f, r2 = 0.f;
  if (t < p.q_len) {
    const std::int64_t base = ((static_cast<std::int64_t>(b) * p.q_len + t) * p.heads + head) * kDV;
    for (int c = lane; c < kDV / 8; c += 32) {
      const uint4 g = *reinterpret_cast<const uint4*>(p.dout + base + c * 8);
      r1 += dot8(g, *reinterpret_cast<const uint4*>(p.out + base + c * 8));
      if constexpr (kDiff) r2 += dot8(g, *reinterpret_cast<const uint4*>(p.out2 + base + c * 8));
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      r1 += __shfl_xor_sync(0xffffffffu, r1, o);
      r2 += __shfl_xor_sync(0xffffffffu, r2, o);
    }
  }
  const float lam = kDiff ? *p.lambda : 0.f;
  if (lane == 0 && t < p.t_pad) {
    constexpr int kMaps = kDiff ? 2 : 1;
#pragma unroll
    for (int m = 0; m < kMaps; ++m) {
      const int comp = kDiff ? 2 * head + m : head;
      const std::int64_t row = static_cast<std::int64_t>(b) * p.q_comps + comp;
      float dl = INFINITY, dd = 0.f;
      if (t < p.q_len) {
        dl = p.lse[row * p.q_len + t] * 1.4426950408889634f;
        dd = m == 0 ? r1 + lam * r2 : -lam * r2;
      }
      p.lse_log2[row * p.t_pad + t] = dl;
      p.delta[row * p.t_pad + t] = dd;
    }
  }
  if constexpr (kDiff) {
    __shared__ float part[8];
    if (lane == 0) part[warp] = -r2;
    __syncthreads();
    if (threadIdx.x == 0 && p.dlambda != nullptr) {
      float s = 0.f;
#pragma unroll
      for (int w = 0; w < 8; ++w) s += part[w];
      atomicAdd(p.dlambda, s);
    }
  }
}

// dq[row, comp, :] = bf16(scale * acc[row, comp, :]); 8 elements per thread.
__global__ void __launch_bounds__(256)
    attention_dq_convert_kernel(const float* acc, bf16* dq, std::int64_t rows, int comps, int d,
                                std::int64_t q_stride, float scale) {
  const int chunks_per_row = comps * d / 8;
  const std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= rows * chunks_per_row) return;
  const std::int64_t row = c / chunks_per_row;
  const int rem = static_cast<int>(c % chunks_per_row);
  const int comp = rem / (d / 8), cc = rem % (d / 8);
  const float* src = acc + (row * comps + comp) * d + cc * 8;
  const float4 x0 = *reinterpret_cast<const float4*>(src);
  const float4 x1 = *reinterpret_cast<const float4*>(src + 4);
  *reinterpret_cast<uint4*>(dq + row * q_stride + comp * d + cc * 8) =
      make_uint4(pack_bf16(x0.x * scale, x0.y * scale), pack_bf16(x0.z * scale, x0.w * scale),
                 pack_bf16(x1.x * scale, x1.y * scale), pack_bf16(x1.z * scale, x1.w * scale));
}

}  // namespace difftx::cuda::attn
