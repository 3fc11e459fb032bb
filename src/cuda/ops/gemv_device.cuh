// The decode GEMVs' shared parts (private to src/cuda/ops): the arithmetic both kernels use so
// that they agree bit for bit where they must (16-byte dot products, the RMSNorm prologue and its
// bf16 rounding, the QKV projection's RoPE and KV-pool epilogue), the L1-bypassing weight load,
// and the launch settings read from the device and the environment; also the split-K kernel's
// entry points (gemv_splitk.cu), which launch_gemv (gemv.cu) picks between.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "device_util.cuh"
#include "gemv.cuh"
#include "rope_math.cuh"

namespace difftx::cuda {
namespace gemv_detail {

inline constexpr int kGemvThreads = 256;

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
__device__ inline void norm_prologue(const GemvArgs& a, float* rstd) {
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
    for (int k0 = threadIdx.x * 8; k0 < a.k; k0 += kGemvThreads * 8) {
      float g[8];
      load_gain8(a, k0, g);
      const uint4 raw = __ldg(reinterpret_cast<const uint4*>(a.x + i64(r) * a.ldx + k0));
      *reinterpret_cast<uint4*>(a.xn + i64(r) * a.k + k0) = normalize8(raw, rstd[r], g);
    }
  }
}

// A 16-byte weight load that skips L1 (the weights are read once; L1 keeps the input rows).
__device__ __forceinline__ uint4 load_weight16(const bf16* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

// The output column (weight row) that a warp's raw column jr computes: jr itself, except in
// qkv_rope mode with half-split RoPE, where raw columns 2P and 2P + 1 are the two columns of q/k
// rotation pair P (interleaved pairs are adjacent already; v columns keep their order).
template <GemvMode kMode>
__device__ __forceinline__ int mapped_column(const GemvArgs& a, int jr) {
  if constexpr (kMode != GemvMode::qkv_rope) {
    return jr;
  } else {
    const GemvRopeKv& e = a.rope;
    const int half = e.head_dim / 2, pair = jr >> 1;
    if (e.interleaved || pair >= (e.q_heads + e.k_heads) * half) return jr;
    return (pair / half) * e.head_dim + pair % half + ((jr & 1) ? half : 0);
  }
}

// The qkv_rope epilogue for row r and the pair of raw columns (jr, jr + 1) with dot products v0,
// v1: rounded to bf16 (what the plain projection stores), rotated when they are a q or k pair
// (what RoPE at positions computes from the stored values), stored, and k / v copied to the
// pools. `cs`: the rotation's cosine and sine computed beforehand (rope_angle), or null.
__device__ inline void qkv_rope_store(const GemvArgs& a, int r, int jr, float v0, float v1,
                                      const float2* cs = nullptr) {
  const GemvRopeKv& e = a.rope;
  const int d = e.head_dim, half = d / 2, pair = jr >> 1;
  const int c0 = mapped_column<GemvMode::qkv_rope>(a, jr);
  const int c1 = mapped_column<GemvMode::qkv_rope>(a, jr + 1);
  float x0 = __bfloat162float(__float2bfloat16_rn(v0));
  float x1 = __bfloat162float(__float2bfloat16_rn(v1));
  const int q_width = e.q_heads * d, k_width = e.k_heads * d;
  if (pair < (e.q_heads + e.k_heads) * half) {
    if (cs) {
      rope_apply(x0, x1, cs->x, cs->y);
    } else {
      rope_rotate(x0, x1, pair % half, d, e.positions[r], e.log_theta);
    }
  }
  const bf16 b0 = __float2bfloat16_rn(x0), b1 = __float2bfloat16_rn(x1);
  bf16* o = static_cast<bf16*>(a.out) + i64(r) * a.ldo;
  o[c0] = b0;
  o[c1] = b1;
  const i64 slot = e.slots[r];
  if (slot < 0 || c0 < q_width) return;
  if (c0 < q_width + k_width) {
    e.k_pool[slot * k_width + (c0 - q_width)] = b0;
    e.k_pool[slot * k_width + (c1 - q_width)] = b1;
  } else {
    const i64 v_width = a.ldo - q_width - k_width;
    e.v_pool[slot * v_width + (c0 - q_width - k_width)] = b0;
    e.v_pool[slot * v_width + (c1 - q_width - k_width)] = b1;
  }
}

// Total output columns of the call.
__device__ __forceinline__ int total_columns(const GemvArgs& a) {
  if (a.mode == GemvMode::swiglu) return a.m[0];
  int total = 0;
  for (int i = 0; i < a.count; ++i) total += a.m[i];
  return total;
}

// Row j of the call's weights side by side (store, accumulate, QKV): its first element.
__device__ __forceinline__ const bf16* concat_row(const GemvArgs& a, int j) {
  int i = 0;
  while (j >= a.m[i]) j -= a.m[i++];
  return a.w[i] + i64(j) * a.k;
}

// Weight bytes under which a one-row call runs exclusive (reserved shared memory, below).
inline constexpr i64 kExclusiveBelowBytes = i64(4) << 20;

// Multiprocessors of the current device (132 if it cannot be asked).
inline int sm_count() {
  static const int count = [] {
    int device = 0, n = 0;
    if (cudaGetDevice(&device) != cudaSuccess) return 132;
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess)
      return 132;
    return n;
  }();
  return count;
}

// A profiling setting from the environment: the integer in `name` if it lies in [lo, hi], else
// `fallback`.
inline int env_int_or(const char* name, int lo, int hi, int fallback) {
  const char* env = std::getenv(name);
  const int v = env ? std::atoi(env) : 0;
  return env && v >= lo && v <= hi ? v : fallback;
}

// Blocks per multiprocessor the grid is capped at (DIFFTX_GEMV_BLOCKS_PER_SM=1..8 for profiling,
// default 2: 16 warps per multiprocessor, each with 8 weight loads in flight).
inline int blocks_per_sm() {
  static const int blocks = env_int_or("DIFFTX_GEMV_BLOCKS_PER_SM", 1, 8, 2);
  return blocks;
}

// Dynamic shared memory per block that fills a multiprocessor's between the grid's
// blocks_per_sm() blocks of a GEMV (H200: ~113 KB), so that no block of another kernel fits beside
// them; 4 KB are left for the kernels' own (static) shared memory.
inline std::size_t exclusive_smem() {
  static const std::size_t bytes = [] {
    int device = 0, per_sm = 0, per_block = 0, reserved = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device) !=
            cudaSuccess ||
        cudaDeviceGetAttribute(&per_block, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) !=
            cudaSuccess ||
        cudaDeviceGetAttribute(&reserved, cudaDevAttrReservedSharedMemoryPerBlock, device) !=
            cudaSuccess)
      return std::size_t(0);
    const int fill = per_sm / blocks_per_sm() - reserved - 4096;
    return std::size_t(std::clamp(fill, 0, per_block));
  }();
  return bytes;
}

// The reservation forced for measurement, in bytes, or -1 when none is: DIFFTX_GEMV_SMEM_KB=0..200
// (0: never exclusive) applies to the modes named in DIFFTX_GEMV_SMEM_MODES (separated by ',' or
// '+': store, accumulate, swiglu, qkv; default all), 0 bytes to the others. Both GEMV kernels
// honour it.
inline int forced_reserve_bytes(GemvMode mode) {
  static const int forced = env_int_or("DIFFTX_GEMV_SMEM_KB", 0, 200, -1);
  if (forced < 0) return -1;
  static const unsigned mask = [] {  // bit m: mode m reserves
    const char* env = std::getenv("DIFFTX_GEMV_SMEM_MODES");
    if (!env) return ~0u;
    const char* names[] = {"store", "accumulate", "swiglu", "qkv"};
    const GemvMode modes[] = {GemvMode::store, GemvMode::accumulate, GemvMode::swiglu,
                              GemvMode::qkv_rope};
    unsigned m = 0;
    for (const char* p = env; *p;) {
      const char* end = std::strpbrk(p, ",+");
      const std::size_t len = end ? std::size_t(end - p) : std::strlen(p);
      for (int i = 0; i < 4; ++i) {
        if (std::strlen(names[i]) == len && std::strncmp(p, names[i], len) == 0)
          m |= 1u << int(modes[i]);
      }
      p += len + (end ? 1 : 0);
    }
    return m;
  }();
  return mask >> int(mode) & 1u ? forced << 10 : 0;
}

// The split-K kernel (gemv_splitk.cu): whether it takes a call that gemv_supported accepts, and
// its launch.
// `total`: the call's output columns.
bool gemv_splitk_takes(const GemvArgs& a);
void launch_gemv_splitk(const GemvArgs& a, int total, cudaStream_t stream);

}  // namespace gemv_detail
}  // namespace difftx::cuda
