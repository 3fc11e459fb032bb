// Materialized attention for the evaluation probes: kernels and launchers (probe_attention.cuh).
// Straightforward tiled kernels: speed matters little next to the statistics they feed, and the
// CPU backend is their oracle (tests/cuda/test_cuda_probe.cpp).
#include <cuda_bf16.h>

#include <cstdint>

#include "difftx/cuda/common/check.h"
#include "difftx/cuda/common/launch.h"
#include "probe_attention.cuh"

namespace difftx::cuda {
namespace {

using bf16 = __nv_bfloat16;
using i64 = std::int64_t;

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the block (a multiple of 32 threads); every thread gets it. Starts with a barrier.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  return warp_sum(lane < warps ? scratch[lane] : 0.f);
}

constexpr int kTile = 64;   // scores: 64 x 64 outputs per block
constexpr int kChunk = 32;  // head-dim chunk staged in shared memory

__device__ __forceinline__ i64 score_row(const AttentionGeometry& g, int b, int m, int t) {
  return ((i64(b) * g.q_heads + m) * g.q_len + t) * g.kv_len;
}

// grid (ceil(S/64), ceil(T/64), B*Hs), 256 threads: each computes 4 x 4 scores.
__global__ void scores_kernel(AttentionGeometry g, ProbeCombine c, const bf16* __restrict__ q,
                              const bf16* __restrict__ k, float* __restrict__ scores) {
  __shared__ float qs[kTile][kChunk + 1];
  __shared__ float ks[kTile][kChunk + 1];
  const int bm = blockIdx.z, b = bm / g.q_heads, m = bm % g.q_heads;
  const int kc = probe_key_component(g, c, m);
  const int t0 = blockIdx.y * kTile, s0 = blockIdx.x * kTile;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const bool all_masked = s0 > g.q_offset + t0 + kTile - 1;
  float acc[4][4] = {};
  if (!all_masked) {
    for (int d0 = 0; d0 < g.head_dim; d0 += kChunk) {
      for (int i = threadIdx.x; i < kTile * kChunk; i += blockDim.x) {
        const int r = i / kChunk, dd = i % kChunk, d = d0 + dd;
        const int t = t0 + r, s = s0 + r;
        qs[r][dd] = (t < g.q_len && d < g.head_dim)
                        ? __bfloat162float(
                              q[(i64(b) * g.q_len + t) * g.q_row_stride + i64(m) * g.head_dim + d])
                        : 0.f;
        ks[r][dd] =
            (s < g.kv_len && d < g.head_dim)
                ? __bfloat162float(
                      k[(i64(b) * g.kv_len + s) * g.kv_row_stride_k + i64(kc) * g.head_dim + d])
                : 0.f;
      }
      __syncthreads();
#pragma unroll 8
      for (int dd = 0; dd < kChunk; ++dd) {
        float a[4], bb[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) a[i] = qs[ty + 16 * i][dd];
#pragma unroll
        for (int j = 0; j < 4; ++j) bb[j] = ks[tx + 16 * j][dd];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
#pragma unroll
          for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * bb[j];
        }
      }
      __syncthreads();
    }
  }
  const float scale = float(g.scale);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int t = t0 + ty + 16 * i;
    if (t >= g.q_len) continue;
    float* row = scores + score_row(g, b, m, t);
    const int visible = probe_visible(g, t);
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int s = s0 + tx + 16 * j;
      if (s < g.kv_len) row[s] = s < visible ? acc[i][j] * scale : 0.f;
    }
  }
}

// One block per (b, m, t) row: absmax of the visible entries into its group (float bits as
// unsigned: order-preserving for non-negative values).
__global__ void row_absmax_kernel(AttentionGeometry g, bool per_head,
                                  const float* __restrict__ scores,
                                  unsigned* __restrict__ group_max) {
  __shared__ float red[32];
  const i64 r = blockIdx.x;
  const int t = int(r % g.q_len);
  const i64 bm = r / g.q_len;
  const int b = int(bm / g.q_heads);
  const int n = probe_visible(g, t);
  const float* x = scores + r * g.kv_len;
  float mx = 0.f;
  for (int s = threadIdx.x; s < n; s += blockDim.x) mx = fmaxf(mx, fabsf(x[s]));
  mx = warp_max(mx);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = mx;
  __syncthreads();
  if (threadIdx.x < 32) {
    mx = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0.f;
    mx = warp_max(mx);
    if (threadIdx.x == 0) atomicMax(group_max + (per_head ? bm : b), __float_as_uint(mx));
  }
}

__global__ void quantize_kernel(AttentionGeometry g, bool per_head, float levels,
                                const unsigned* __restrict__ group_max,
                                float* __restrict__ scores) {
  const i64 rows = i64(g.batch) * g.q_heads * g.q_len;
  for (i64 r = blockIdx.x; r < rows; r += gridDim.x) {
    const int t = int(r % g.q_len);
    const i64 bm = r / g.q_len;
    const float absmax = __uint_as_float(group_max[per_head ? bm : bm / g.q_heads]);
    if (absmax == 0.f) continue;
    const float step = absmax / levels;
    const int n = probe_visible(g, t);
    float* x = scores + r * g.kv_len;
    for (int s = threadIdx.x; s < n; s += blockDim.x) {
      const float level = fminf(fmaxf(roundf(x[s] / step), -levels), levels);
      x[s] = level * step;
    }
  }
}

// One block per row; in place is fine (each element is read before the same thread writes it).
__global__ void softmax_kernel(AttentionGeometry g, const float* scores, float* probs) {
  __shared__ float red[32];
  const i64 r = blockIdx.x;
  const int t = int(r % g.q_len);
  const int n = probe_visible(g, t);
  const float* x = scores + r * g.kv_len;
  float* p = probs + r * g.kv_len;
  float mx = -INFINITY;
  for (int s = threadIdx.x; s < n; s += blockDim.x) mx = fmaxf(mx, x[s]);
  mx = warp_max(mx);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = mx;
  __syncthreads();
  float row_max = -INFINITY;
  for (int w = 0; w < int(blockDim.x >> 5); ++w) row_max = fmaxf(row_max, red[w]);
  float sum = 0.f;
  for (int s = threadIdx.x; s < n; s += blockDim.x) sum += expf(x[s] - row_max);
  sum = block_sum(sum, red);
  const float inv = 1.f / sum;
  for (int s = threadIdx.x; s < g.kv_len; s += blockDim.x)
    p[s] = s < n ? expf(x[s] - row_max) * inv : 0.f;
}

constexpr int kRows = 32;    // query rows per block
constexpr int kSChunk = 32;  // keys per staged chunk
constexpr int kThreads = 256;
constexpr int kMaxPer = 32;  // outputs per thread: kRows * 256 / kThreads

// grid (ceil(T/32), heads, B): out rows t0..t0+31 of head i = sum_s w[t,s] V[s,:].
__global__ void probs_value_kernel(AttentionGeometry g, ProbeCombine c,
                                   const float* __restrict__ probs, const bf16* __restrict__ v,
                                   const float* __restrict__ lambda, const bf16* __restrict__ gate,
                                   bf16* __restrict__ out) {
  extern __shared__ float smem[];
  const int dv = g.v_head_dim;
  float* ws = smem;                          // [kRows][kSChunk + 1]
  float* vs = smem + kRows * (kSChunk + 1);  // [kSChunk][dv]
  const int t0 = blockIdx.x * kRows, i = blockIdx.y, b = blockIdx.z;
  const int heads = probe_out_heads(g, c);
  const int vh = probe_value_head(g, c, i);
  const int ma = c == ProbeCombine::softmax ? i : 2 * i;
  __shared__ float coef[kRows];
  if (threadIdx.x < kRows) {
    const int t = t0 + threadIdx.x;
    float cf = 0.f;
    if (c == ProbeCombine::diff_v1) cf = *lambda;
    if (c == ProbeCombine::diff_v2 && t < g.q_len) {
      cf = 1.f / (1.f + expf(-__bfloat162float(gate[(i64(b) * g.q_len + t) * heads + i])));
    }
    coef[threadIdx.x] = cf;
  }
  float acc[kMaxPer];
#pragma unroll
  for (int k = 0; k < kMaxPer; ++k) acc[k] = 0.f;
  const int total = kRows * dv;
  const int last_t = min(t0 + kRows, g.q_len) - 1;
  const int s_end = probe_visible(g, last_t);
  __syncthreads();
  for (int s0 = 0; s0 < s_end; s0 += kSChunk) {
    for (int idx = threadIdx.x; idx < kRows * kSChunk; idx += blockDim.x) {
      const int r = idx / kSChunk, j = idx % kSChunk, t = t0 + r, s = s0 + j;
      float w = 0.f;
      if (t < g.q_len && s < probe_visible(g, t)) {
        w = probs[score_row(g, b, ma, t) + s];
        if (c != ProbeCombine::softmax) w -= coef[r] * probs[score_row(g, b, ma + 1, t) + s];
      }
      ws[r * (kSChunk + 1) + j] = w;
    }
    for (int idx = threadIdx.x; idx < kSChunk * dv; idx += blockDim.x) {
      const int j = idx / dv, d = idx % dv, s = s0 + j;
      vs[idx] =
          s < g.kv_len
              ? __bfloat162float(v[(i64(b) * g.kv_len + s) * g.kv_row_stride_v + i64(vh) * dv + d])
              : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kMaxPer; ++k) {
      const int idx = threadIdx.x + k * kThreads;
      if (idx < total) {
        const int r = idx / dv, d = idx % dv;
        float a = acc[k];
        for (int j = 0; j < kSChunk; ++j) a += ws[r * (kSChunk + 1) + j] * vs[j * dv + d];
        acc[k] = a;
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int k = 0; k < kMaxPer; ++k) {
    const int idx = threadIdx.x + k * kThreads;
    if (idx < total) {
      const int r = idx / dv, d = idx % dv, t = t0 + r;
      if (t < g.q_len)
        out[((i64(b) * g.q_len + t) * heads + i) * dv + d] = __float2bfloat16_rn(acc[k]);
    }
  }
}

}  // namespace

void launch_probe_scores(const AttentionGeometry& g, ProbeCombine combine, const void* q,
                         const void* k, float* scores, cudaStream_t stream) {
  const dim3 grid((g.kv_len + kTile - 1) / kTile, (g.q_len + kTile - 1) / kTile,
                  g.batch * g.q_heads);
  scores_kernel<<<grid, 256, 0, stream>>>(g, combine, static_cast<const bf16*>(q),
                                          static_cast<const bf16*>(k), scores);
  DIFFTX_CUDA_CHECK_LAUNCH("attention_scores", "scores_kernel");
}

std::size_t probe_quantize_workspace_bytes(const AttentionGeometry& g, bool per_head) {
  return std::size_t(g.batch) * (per_head ? g.q_heads : 1) * sizeof(unsigned);
}

void launch_probe_quantize(const AttentionGeometry& g, int bits, bool per_head, float* scores,
                           void* workspace, cudaStream_t stream) {
  auto* group_max = static_cast<unsigned*>(workspace);
  DIFFTX_CUDA_CHECK(
      "attention_logits_quantize",
      cudaMemsetAsync(group_max, 0, probe_quantize_workspace_bytes(g, per_head), stream));
  const i64 rows = i64(g.batch) * g.q_heads * g.q_len;
  row_absmax_kernel<<<unsigned(rows), 256, 0, stream>>>(g, per_head, scores, group_max);
  DIFFTX_CUDA_CHECK_LAUNCH("attention_logits_quantize", "row_absmax_kernel");
  const float levels = float((1 << (bits - 1)) - 1);
  quantize_kernel<<<grid_blocks(rows, 1), 256, 0, stream>>>(g, per_head, levels, group_max, scores);
  DIFFTX_CUDA_CHECK_LAUNCH("attention_logits_quantize", "quantize_kernel");
}

void launch_probe_softmax(const AttentionGeometry& g, const float* scores, float* probs,
                          cudaStream_t stream) {
  const i64 rows = i64(g.batch) * g.q_heads * g.q_len;
  softmax_kernel<<<unsigned(rows), 256, 0, stream>>>(g, scores, probs);
  DIFFTX_CUDA_CHECK_LAUNCH("attention_softmax", "softmax_kernel");
}

void launch_probe_probs_value(const AttentionGeometry& g, ProbeCombine combine, const float* probs,
                              const void* v, const float* lambda, const void* gate, void* out,
                              cudaStream_t stream) {
  if (g.v_head_dim > 256) throw_op_error("attention_probs_value", "value head dim above 256");
  const std::size_t smem =
      (std::size_t(kRows) * (kSChunk + 1) + std::size_t(kSChunk) * g.v_head_dim) * sizeof(float);
  const dim3 grid((g.q_len + kRows - 1) / kRows, probe_out_heads(g, combine), g.batch);
  probs_value_kernel<<<grid, kThreads, smem, stream>>>(
      g, combine, probs, static_cast<const bf16*>(v), lambda, static_cast<const bf16*>(gate),
      static_cast<bf16*>(out));
  DIFFTX_CUDA_CHECK_LAUNCH("attention_probs_value", "probs_value_kernel");
}

}  // namespace difftx::cuda
