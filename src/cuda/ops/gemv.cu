// Decode-step matrix-vector products: kernel and launcher (see gemv.cuh). A warp owns kCols
// output columns (weight rows) at a time: its lanes stream those rows in 16-byte chunks (several
// in flight), dot each chunk with the n input rows (read through L1 once per chunk, shared by
// the kCols rows) and reduce by shuffles; lanes then apply the epilogue to their (column, row)
// outputs. Many columns: 4 per warp (fewer L1 reads of the input per weight byte); few columns:
// 1 per warp (more warps in flight). SwiGLU pairs each gate row with its up row. Grid-stride
// over the columns of all weights. With a norm, every block first computes the rows' rstd (one
// warp per row, from L2) and normalizes each input chunk as it reads it; block 0 writes xn.
#include <algorithm>

#include "device_util.cuh"
#include "gemv.cuh"
#include "pdl.cuh"

namespace difftx::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

__device__ __forceinline__ float dot8(const uint4& a, const uint4& b) {
  const __nv_bfloat162* x = reinterpret_cast<const __nv_bfloat162*>(&a);
  const __nv_bfloat162* y = reinterpret_cast<const __nv_bfloat162*>(&b);
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 u = __bfloat1622float2(x[i]), v = __bfloat1622float2(y[i]);
    s = fmaf(u.x, v.x, s);
    s = fmaf(u.y, v.y, s);
  }
  return s;
}

// The gain of input chunk [k0, k0 + 8) as floats.
__device__ __forceinline__ void load_gain8(const GemvArgs& a, int k0, float g[8]) {
  if (a.norm_w_f32) {
    const float4* p = reinterpret_cast<const float4*>(static_cast<const float*>(a.norm_w) + k0);
    const float4 u = __ldg(p), v = __ldg(p + 1);
    g[0] = u.x, g[1] = u.y, g[2] = u.z, g[3] = u.w, g[4] = v.x, g[5] = v.y, g[6] = v.z, g[7] = v.w;
  } else {
    const uint4 raw =
        __ldg(reinterpret_cast<const uint4*>(static_cast<const bf16*>(a.norm_w) + k0));
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __bfloat1622float2(h[i]);
      g[2 * i] = f.x, g[2 * i + 1] = f.y;
    }
  }
}

// x * r * g per element, rounded to bf16: rmsnorm_forward's arithmetic (scale 1).
__device__ __forceinline__ uint4 normalize8(const uint4& x, float r, const float g[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&x);
  uint4 out;
  __nv_bfloat162* o = reinterpret_cast<__nv_bfloat162*>(&out);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 f = __bfloat1622float2(h[i]);
    o[i] = __floats2bfloat162_rn(f.x * r * g[2 * i], f.y * r * g[2 * i + 1]);
  }
  return out;
}

// The norm prologue: rstd of each of the n rows into `rstd` (shared), warp r computing row r;
// block 0 then writes the normalized rows and rstd to the outputs.
__device__ void norm_prologue(const GemvArgs& a, float* rstd) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (warp < a.n) {
    const bf16* xr = a.x + i64(warp) * a.ldx;
    float ss = 0.f;
    for (int k0 = lane * 8; k0 < a.k; k0 += 256) {
      const uint4 raw = __ldg(reinterpret_cast<const uint4*>(xr + k0));
      const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const float2 f = __bfloat1622float2(h[i]);
        ss += f.x * f.x + f.y * f.y;
      }
    }
    ss = warp_sum(ss);
    if (lane == 0) rstd[warp] = 1.f / sqrtf(ss / float(a.k) + a.norm_eps);
  }
  __syncthreads();
  if (blockIdx.x != 0) return;
  if (threadIdx.x < a.n) a.rstd[threadIdx.x] = rstd[threadIdx.x];
  for (int r = 0; r < a.n; ++r) {
    for (int k0 = threadIdx.x * 8; k0 < a.k; k0 += kThreads * 8) {
      float g[8];
      load_gain8(a, k0, g);
      const uint4 raw = __ldg(reinterpret_cast<const uint4*>(a.x + i64(r) * a.ldx + k0));
      *reinterpret_cast<uint4*>(a.xn + i64(r) * a.k + k0) = normalize8(raw, rstd[r], g);
    }
  }
}

// Total output columns of the call.
__device__ __forceinline__ int total_columns(const GemvArgs& a) {
  if (a.mode == GemvMode::swiglu) return a.m[0];
  int total = 0;
  for (int i = 0; i < a.count; ++i) total += a.m[i];
  return total;
}

// kRows weight rows per warp pass (kCols columns; SwiGLU: a gate and an up row per column).
template <int NR, GemvMode kMode, typename Out, int kCols, bool kNorm>
__global__ void __launch_bounds__(kThreads) gemv_kernel(const GemvArgs a) {
  constexpr bool kSwiglu = kMode == GemvMode::swiglu;
  constexpr int kRows = kSwiglu ? 2 * kCols : kCols;
  constexpr int kUnroll = kRows >= 4 ? 2 : 4;  // 16-byte loads in flight per lane: 8 or 4
  __shared__ float rstd[kGemvMaxRows];
  pdl_wait();
  pdl_launch_dependents();
  if constexpr (kNorm) norm_prologue(a, rstd);
  const int lane = threadIdx.x & 31;
  const int total = total_columns(a);
  const int stride = gridDim.x * kWarps * kCols;
  Out* out = static_cast<Out*>(a.out);
  for (int j0 = (blockIdx.x * kWarps + (threadIdx.x >> 5)) * kCols; j0 < total; j0 += stride) {
    const bf16* w[kRows];
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
      const int j = min(j0 + c, total - 1);  // a past-the-end column repeats the last one
      if constexpr (kSwiglu) {
        w[2 * c] = a.w[0] + i64(j) * a.k;
        w[2 * c + 1] = a.w[1] + i64(j) * a.k;
      } else {
        int i = 0, local = j;
        while (local >= a.m[i]) local -= a.m[i++];
        w[c] = a.w[i] + i64(local) * a.k;
      }
    }
    float acc[kRows][NR];
#pragma unroll
    for (int q = 0; q < kRows; ++q) {
#pragma unroll
      for (int r = 0; r < NR; ++r) acc[q][r] = 0.f;
    }
    for (int k0 = lane * 8; k0 < a.k; k0 += 256 * kUnroll) {
      uint4 wv[kUnroll][kRows];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int kk = k0 + u * 256;
#pragma unroll
        for (int q = 0; q < kRows; ++q) {
          wv[u][q] =
              kk < a.k ? __ldg(reinterpret_cast<const uint4*>(w[q] + kk)) : make_uint4(0, 0, 0, 0);
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int kk = k0 + u * 256;
        if (kk >= a.k) break;
        float g[8];
        if constexpr (kNorm) load_gain8(a, kk, g);
#pragma unroll
        for (int r = 0; r < NR; ++r) {
          if (r >= a.n) break;
          uint4 xv = __ldg(reinterpret_cast<const uint4*>(a.x + r * a.ldx + kk));
          if constexpr (kNorm) xv = normalize8(xv, rstd[r], g);
#pragma unroll
          for (int q = 0; q < kRows; ++q) acc[q][r] += dot8(wv[u][q], xv);
        }
      }
    }
#pragma unroll
    for (int q = 0; q < kRows; ++q) {
#pragma unroll
      for (int r = 0; r < NR; ++r) acc[q][r] = warp_sum(acc[q][r]);
    }
    // Lane c * NR + r writes column j0 + c of input row r.
#pragma unroll
    for (int c = 0; c < kCols; ++c) {
#pragma unroll
      for (int r = 0; r < NR; ++r) {
        if (lane != c * NR + r || r >= a.n || j0 + c >= total) continue;
        Out* o = out + r * a.ldo + j0 + c;
        if constexpr (kSwiglu) {
          const float g = acc[2 * c][r];
          *o = convert_to<Out>(g / (1.f + expf(-g)) * acc[2 * c + 1][r]);
        } else if constexpr (kMode == GemvMode::accumulate) {
          *o = convert_to<Out>(convert_to<float>(*o) + acc[c][r]);
        } else {
          *o = convert_to<Out>(acc[c][r]);
        }
      }
    }
  }
}

int sm_count() {
  static const int count = [] {
    int device = 0, n = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return 132;
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
      return 132;
    return n;
  }();
  return count;
}

template <int NR, GemvMode kMode, int kCols, bool kNorm>
void launch_cols(const GemvArgs& a, int total, cudaStream_t stream) {
  const i64 per_block = i64(kWarps) * kCols;
  const unsigned blocks =
      unsigned(std::min<i64>((total + per_block - 1) / per_block, i64(sm_count()) * 8));
  cudaError_t status;
  if (a.out_type == ScalarType::f32) {
    status = launch_pdl(gemv_kernel<NR, kMode, float, kCols, kNorm>, dim3(blocks), dim3(kThreads),
                        0, stream, pdl_enabled(), a);
  } else {
    status = launch_pdl(gemv_kernel<NR, kMode, bf16, kCols, kNorm>, dim3(blocks), dim3(kThreads), 0,
                        stream, pdl_enabled(), a);
  }
  if (status != cudaSuccess) {
    throw_cuda_error("gemv", "cudaLaunchKernelEx(gemv_kernel)", status, __FILE__, __LINE__);
  }
}

template <int NR, GemvMode kMode, bool kNorm>
void launch_rows(const GemvArgs& a, int total, cudaStream_t stream) {
  // 4 columns per warp once that still gives every multiprocessor 8 warps (for any row count:
  // forcing 4 columns at 4-8 rows left a 768-column projection 24 blocks, 26 us on an H200)
  if (total >= 4 * kWarps * sm_count()) {
    launch_cols<NR, kMode, 4, kNorm>(a, total, stream);
  } else {
    launch_cols<NR, kMode, 1, kNorm>(a, total, stream);
  }
}

template <GemvMode kMode, bool kNorm>
void launch_mode(const GemvArgs& a, int total, cudaStream_t stream) {
  if (a.n == 1) {
    launch_rows<1, kMode, kNorm>(a, total, stream);
  } else if (a.n == 2) {
    launch_rows<2, kMode, kNorm>(a, total, stream);
  } else if (a.n <= 4) {
    launch_rows<4, kMode, kNorm>(a, total, stream);
  } else {
    launch_rows<8, kMode, kNorm>(a, total, stream);
  }
}

}  // namespace

bool gemv_supported(const GemvArgs& a) {
  if (a.n < 1 || a.n > kGemvMaxRows || a.k < 8 || a.k % 8 != 0 || a.ldx % 8 != 0) return false;
  if (a.count < 1 || a.count > kGemvMaxWeights || !aligned16(a.x)) return false;
  if (a.mode == GemvMode::swiglu && (a.count != 2 || a.m[0] != a.m[1])) return false;
  if (a.norm_w) {
    if (a.mode == GemvMode::accumulate || !a.xn || !a.rstd || a.ldx != a.k) return false;
    if (!aligned16(a.norm_w) || !aligned16(a.xn)) return false;
  }
  for (int i = 0; i < a.count; ++i) {
    if (!aligned16(a.w[i]) || a.m[i] < 1) return false;
  }
  return a.out_type == ScalarType::bf16 || a.out_type == ScalarType::f32;
}

void launch_gemv(const GemvArgs& a, cudaStream_t stream) {
  if (!gemv_supported(a)) throw_op_error("gemv", "operands the kernel does not take");
  int total = a.m[0];
  if (a.mode != GemvMode::swiglu) {
    for (int i = 1; i < a.count; ++i) total += a.m[i];
  }
  const bool norm = a.norm_w != nullptr;
  switch (a.mode) {
    case GemvMode::store:
      norm ? launch_mode<GemvMode::store, true>(a, total, stream)
           : launch_mode<GemvMode::store, false>(a, total, stream);
      break;
    case GemvMode::accumulate:
      launch_mode<GemvMode::accumulate, false>(a, total, stream);
      break;
    case GemvMode::swiglu:
      norm ? launch_mode<GemvMode::swiglu, true>(a, total, stream)
           : launch_mode<GemvMode::swiglu, false>(a, total, stream);
      break;
  }
}

}  // namespace difftx::cuda
