// Device sampling: kernels and launchers (see sample.cuh). Three kernels:
//   1. partial (grid chunks x rows): per 2048-logit chunk its max, sum of exp relative to it,
//      argmax (packed 64-bit key: order-preserving bits of the value, then the complement of the
//      id, so the maximum key is the largest value with the lowest id) and a NaN/+inf flag;
//   2. gumbel (grid chunks x rows, unfiltered sampling rows only): per chunk the best
//      (logit - max) / T - log(-log u_i) as a packed key;
//   3. final (one 1024-thread block per row): combines the chunks into the log-sum-exp and the
//      token; rows with top-k / top-p run the filtered draw here (radix selection of the k-th
//      largest logit and of the nucleus threshold, ties resolved by id in a scan, then the
//      Gumbel-max over the kept set); the top-N alternatives from per-thread sorted lists.
#include <algorithm>

#include "device_util.cuh"
#include "difftx/core/paged_attention.h"
#include "pdl.cuh"
#include "sample.cuh"

namespace difftx::cuda {
namespace {

using u32 = std::uint32_t;
using u64 = unsigned long long;

constexpr int kChunk = 2048;
constexpr int kPartThreads = 256;
constexpr int kFinalThreads = 1024;
constexpr int kMaxTop = 32;

struct Partial {
  float max;   // of the chunk's finite logits (-inf if none)
  float sum;   // sum of exp(logit - max) over them
  u64 argmax;  // packed key of the largest finite logit, 0 if none
  int bad;     // a NaN or +inf was seen
  int pad;
};

struct RowParams {
  float t;
  int top_k;
  float top_p;
  u64 seed;
  u32 counter;
  int top_n;
};

__device__ __forceinline__ RowParams row_params(const std::int32_t* p) {
  RowParams r;
  r.t = __int_as_float(p[kSampleTemperature]);
  r.top_k = p[kSampleTopK];
  r.top_p = __int_as_float(p[kSampleTopP]);
  r.seed = u64(u32(p[kSampleSeedLo])) | (u64(u32(p[kSampleSeedHi])) << 32);
  r.counter = u32(p[kSampleCounter]);
  r.top_n = p[kSampleTopN];
  return r;
}

__device__ __forceinline__ bool use_top_k(const RowParams& r, i64 vocab) {
  return r.top_k > 0 && r.top_k < vocab;
}
__device__ __forceinline__ bool filtered(const RowParams& r, i64 vocab) {
  return r.t > 0.f && (use_top_k(r, vocab) || r.top_p < 1.f);
}

// Order-preserving map of a float to u32 (larger float, larger key).
__device__ __forceinline__ u32 ordered(float x) {
  const u32 u = __float_as_uint(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ u64 pack_key(float value, i64 id) {
  return (u64(ordered(value)) << 32) | u64(0xffffffffu - u32(id));
}
__device__ __forceinline__ int key_id(u64 key) {
  return int(0xffffffffu - u32(key & 0xffffffffu));
}

__device__ __forceinline__ float gumbel(u64 seed, u32 counter, i64 id) {
  const float u = sample_uniform(seed, counter, u32(id));
  return -logf(-logf(u));
}

// Block-wide reductions; every thread gets the result. `scratch` holds 32 entries.
template <typename A, typename Op>
__device__ A block_reduce(A v, A* scratch, Op op) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  A r = scratch[0];
  for (int w = 1; w < warps; ++w) r = op(r, scratch[w]);
  return r;
}

struct MaxF {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumF {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct SumI {
  __device__ int operator()(int a, int b) const { return a + b; }
};
struct OrI {
  __device__ int operator()(int a, int b) const { return a | b; }
};
struct MaxU64 {
  __device__ u64 operator()(u64 a, u64 b) const { return a > b ? a : b; }
};

// Exclusive prefix over the block's threads (in thread order); also returns the total.
template <typename A>
__device__ A block_exclusive_scan(A v, A* scratch, A& total) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  A inc = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const A n = __shfl_up_sync(0xffffffffu, inc, o);
    if (lane >= o) inc += n;
  }
  __syncthreads();
  if (lane == 31) scratch[warp] = inc;
  __syncthreads();
  A before = A(0);
  total = A(0);
  for (int w = 0; w < warps; ++w) {
    if (w < warp) before += scratch[w];
    total += scratch[w];
  }
  return before + inc - v;
}

template <typename T>
__global__ void __launch_bounds__(kPartThreads)
    sample_partial_kernel(const T* __restrict__ logits, i64 vocab, int chunks, Partial* ws) {
  __shared__ float f_scratch[32];
  __shared__ u64 k_scratch[32];
  __shared__ int i_scratch[32];
  pdl_wait();
  pdl_launch_dependents();
  const int row = blockIdx.y, chunk = blockIdx.x;
  const i64 begin = i64(chunk) * kChunk, end = min(vocab, begin + kChunk);
  const T* x = logits + i64(row) * vocab;
  float m = -INFINITY, s = 0.f;
  u64 best = 0;
  int bad = 0;
  for (i64 i = begin + threadIdx.x; i < end; i += kPartThreads) {
    const float l = convert_to<float>(x[i]);
    if (isnan(l) || l == INFINITY) {
      bad = 1;
    } else if (l != -INFINITY) {
      if (l > m) {
        s = s * expf(m - l) + 1.f;
        m = l;
      } else {
        s += expf(l - m);
      }
      const u64 k = pack_key(l, i);
      best = k > best ? k : best;
    }
  }
  const float bm = block_reduce(m, f_scratch, MaxF{});
  const float bs = block_reduce(m == -INFINITY ? 0.f : s * expf(m - bm), f_scratch, SumF{});
  const u64 bk = block_reduce(best, k_scratch, MaxU64{});
  const int bb = block_reduce(bad, i_scratch, OrI{});
  if (threadIdx.x == 0) ws[i64(row) * chunks + chunk] = Partial{bm, bs, bk, bb, 0};
}

// The row's max over all chunks (-inf if none is finite) and whether any chunk saw NaN / +inf.
__device__ __forceinline__ void row_max(const Partial* part, int chunks, float& mx, int& bad) {
  mx = -INFINITY;
  bad = 0;
  for (int c = 0; c < chunks; ++c) {
    mx = fmaxf(mx, part[c].max);
    bad |= part[c].bad;
  }
}

template <typename T>
__global__ void __launch_bounds__(kPartThreads)
    sample_gumbel_kernel(const T* __restrict__ logits, const std::int32_t* __restrict__ params,
                         i64 vocab, int chunks, const Partial* ws, u64* ws_gumbel) {
  __shared__ u64 k_scratch[32];
  pdl_wait();
  pdl_launch_dependents();
  const int row = blockIdx.y, chunk = blockIdx.x;
  const RowParams rp = row_params(params + i64(row) * kSampleParamWords);
  if (!(rp.t > 0.f) || filtered(rp, vocab)) return;
  float mx;
  int bad;
  row_max(ws + i64(row) * chunks, chunks, mx, bad);
  if (bad || mx == -INFINITY) return;
  const i64 begin = i64(chunk) * kChunk, end = min(vocab, begin + kChunk);
  const T* x = logits + i64(row) * vocab;
  u64 best = 0;
  for (i64 i = begin + threadIdx.x; i < end; i += kPartThreads) {
    const float l = convert_to<float>(x[i]);
    if (l == -INFINITY) continue;
    const u64 k = pack_key((l - mx) / rp.t + gumbel(rp.seed, rp.counter, i), i);
    best = k > best ? k : best;
  }
  const u64 bk = block_reduce(best, k_scratch, MaxU64{});
  if (threadIdx.x == 0) ws_gumbel[i64(row) * chunks + chunk] = bk;
}

// Shared state of the final kernel's filtered draw.
struct FinalShared {
  float f_scratch[32];
  int i_scratch[32];
  u64 k_scratch[32];
  unsigned int hist[256];
  float hist_f[256];
  u32 prefix;
  int need;
  float need_f;
  int cutoff;
};

// Radix selection of the k-th largest key among the elements `in_set` admits: returns it, and
// in sh.need how many elements equal to it complete the k (the rest of them come after, by id).
template <typename T, typename InSet>
__device__ u32 select_kth(const T* x, i64 vocab, int k, InSet in_set, FinalShared& sh) {
  u32 prefix = 0, mask = 0;
  int remaining = k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x) sh.hist[b] = 0;
    __syncthreads();
    for (i64 i = threadIdx.x; i < vocab; i += blockDim.x) {
      const float l = convert_to<float>(x[i]);
      if (!in_set(l, i)) continue;
      const u32 key = ordered(l);
      if ((key & mask) == prefix) atomicAdd(&sh.hist[(key >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int cum = 0, digit = 0;
      for (int b = 255; b >= 0; --b) {
        if (cum + int(sh.hist[b]) >= remaining) {
          digit = b;
          break;
        }
        cum += int(sh.hist[b]);
      }
      sh.prefix = prefix | (u32(digit) << shift);
      sh.need = remaining - cum;
    }
    __syncthreads();
    prefix = sh.prefix;
    remaining = sh.need;
    mask |= 255u << shift;
    __syncthreads();
  }
  return prefix;
}

// The same with weights: the key where the mass (from the largest key down) reaches `target`;
// sh.need_f is the mass still needed from the elements equal to it.
template <typename T, typename InSet, typename Weight>
__device__ u32 select_mass(const T* x, i64 vocab, float target, InSet in_set, Weight weight,
                           FinalShared& sh) {
  u32 prefix = 0, mask = 0;
  float remaining = target;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x) {
      sh.hist_f[b] = 0.f;
      sh.hist[b] = 0;
    }
    __syncthreads();
    for (i64 i = threadIdx.x; i < vocab; i += blockDim.x) {
      const float l = convert_to<float>(x[i]);
      if (!in_set(l, i)) continue;
      const u32 key = ordered(l);
      if ((key & mask) == prefix) {
        atomicAdd(&sh.hist_f[(key >> shift) & 255u], weight(l));
        atomicAdd(&sh.hist[(key >> shift) & 255u], 1u);
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      float cum = 0.f;
      int digit = -1, last = 0;
      for (int b = 255; b >= 0; --b) {
        if (sh.hist[b] == 0) continue;
        last = b;
        if (cum + sh.hist_f[b] >= remaining) {
          digit = b;
          break;
        }
        cum += sh.hist_f[b];
      }
      if (digit < 0) {  // rounding left the target unreached: take the smallest non-empty bin
        digit = last;
        cum -= sh.hist_f[last];
      }
      sh.prefix = prefix | (u32(digit) << shift);
      sh.need_f = remaining - cum;
    }
    __syncthreads();
    prefix = sh.prefix;
    remaining = sh.need_f;
    mask |= 255u << shift;
    __syncthreads();
  }
  return prefix;
}

// Among the elements with key == tau that in_set admits, in id order: the id at which the count
// (count_mode) or the weight reaches `need`. Threads own contiguous id ranges for the scan.
template <typename T, typename InSet, typename Weight>
__device__ int tie_cutoff(const T* x, i64 vocab, u32 tau, InSet in_set, Weight weight,
                          bool count_mode, float need, FinalShared& sh) {
  const i64 per = (vocab + blockDim.x - 1) / blockDim.x;
  const i64 lo = min(vocab, i64(threadIdx.x) * per), hi = min(vocab, lo + per);
  float mine = 0.f;
  for (i64 i = lo; i < hi; ++i) {
    const float l = convert_to<float>(x[i]);
    if (in_set(l, i) && ordered(l) == tau) mine += count_mode ? 1.f : weight(l);
  }
  float total;
  float before = block_exclusive_scan(mine, sh.f_scratch, total);
  if (threadIdx.x == 0) sh.cutoff = int(vocab) - 1;  // default: every tie is kept
  __syncthreads();
  if (before < need && before + mine >= need) {
    float cum = before;
    for (i64 i = lo; i < hi; ++i) {
      const float l = convert_to<float>(x[i]);
      if (in_set(l, i) && ordered(l) == tau) {
        cum += count_mode ? 1.f : weight(l);
        if (cum >= need) {
          atomicMin(&sh.cutoff, int(i));
          break;
        }
      }
    }
  }
  __syncthreads();
  const int cutoff = sh.cutoff;
  __syncthreads();
  return cutoff;
}

template <typename T>
__device__ int filtered_draw(const T* x, i64 vocab, const RowParams& rp, float mx,
                             FinalShared& sh) {
  auto finite = [](float l, i64) { return l != -INFINITY; };
  auto weight = [mx, rp](float l) { return expf((l - mx) / rp.t); };
  // top-k
  bool use_k = use_top_k(rp, vocab);
  u32 tau_k = 0;
  int cut_k = int(vocab) - 1;
  if (use_k) {
    int n_finite = 0;
    for (i64 i = threadIdx.x; i < vocab; i += blockDim.x)
      n_finite += convert_to<float>(x[i]) != -INFINITY;
    n_finite = block_reduce(n_finite, sh.i_scratch, SumI{});
    if (rp.top_k >= n_finite) {
      use_k = false;
    } else {
      tau_k = select_kth(x, vocab, rp.top_k, finite, sh);
      cut_k = tie_cutoff(x, vocab, tau_k, finite, weight, true, float(sh.need), sh);
    }
  }
  auto kept_k = [use_k, tau_k, cut_k](float l, i64 i) {
    if (l == -INFINITY) return false;
    if (!use_k) return true;
    const u32 key = ordered(l);
    return key > tau_k || (key == tau_k && i <= cut_k);
  };
  // top-p within the top-k set
  bool use_p = rp.top_p < 1.f;
  u32 tau_p = 0;
  int cut_p = int(vocab) - 1;
  if (use_p) {
    float mass = 0.f;
    for (i64 i = threadIdx.x; i < vocab; i += blockDim.x) {
      const float l = convert_to<float>(x[i]);
      if (kept_k(l, i)) mass += weight(l);
    }
    mass = block_reduce(mass, sh.f_scratch, SumF{});
    tau_p = select_mass(x, vocab, rp.top_p * mass, kept_k, weight, sh);
    cut_p = tie_cutoff(x, vocab, tau_p, kept_k, weight, false, sh.need_f, sh);
  }
  // Gumbel-max over the kept set
  u64 best = 0;
  for (i64 i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float l = convert_to<float>(x[i]);
    if (!kept_k(l, i)) continue;
    if (use_p) {
      const u32 key = ordered(l);
      if (!(key > tau_p || (key == tau_p && i <= cut_p))) continue;
    }
    const u64 k = pack_key((l - mx) / rp.t + gumbel(rp.seed, rp.counter, i), i);
    best = k > best ? k : best;
  }
  best = block_reduce(best, sh.k_scratch, MaxU64{});
  return best == 0 ? -1 : key_id(best);
}

template <typename T>
__global__ void __launch_bounds__(kFinalThreads)
    sample_final_kernel(const T* __restrict__ logits, const std::int32_t* __restrict__ params,
                        i64 vocab, int chunks, const Partial* ws, const u64* ws_gumbel, int top_n,
                        std::int32_t* tokens, float* logprobs, std::int32_t* top_ids,
                        float* top_logprobs) {
  __shared__ FinalShared sh;
  __shared__ float s_lse, s_max;
  __shared__ int s_token, s_bad;
  pdl_wait();
  pdl_launch_dependents();
  const int row = blockIdx.x;
  const T* x = logits + i64(row) * vocab;
  const RowParams rp = row_params(params + i64(row) * kSampleParamWords);
  const Partial* part = ws + i64(row) * chunks;
  if (threadIdx.x == 0) {
    float mx;
    int bad;
    row_max(part, chunks, mx, bad);
    float sum = 0.f;
    u64 arg = 0;
    for (int c = 0; c < chunks; ++c) {
      if (part[c].max != -INFINITY) sum += part[c].sum * expf(part[c].max - mx);
      arg = part[c].argmax > arg ? part[c].argmax : arg;
    }
    s_bad = bad || mx == -INFINITY;
    s_lse = mx + logf(sum);
    int token = key_id(arg);
    if (rp.t > 0.f && !filtered(rp, vocab)) {
      u64 g = 0;
      for (int c = 0; c < chunks; ++c)
        g = ws_gumbel[i64(row) * chunks + c] > g ? ws_gumbel[i64(row) * chunks + c] : g;
      token = key_id(g);
    }
    s_token = token;
    s_max = mx;
  }
  __syncthreads();
  const float mx = s_max;
  const float lse = s_lse;
  const bool bad = s_bad;
  int token = s_token;
  __syncthreads();
  if (!bad && filtered(rp, vocab)) token = filtered_draw(x, vocab, rp, mx, sh);
  const int n = bad ? 0 : min(rp.top_n, top_n);
  if (threadIdx.x == 0) {
    tokens[row] = bad ? -1 : token;
    logprobs[row] = bad || token < 0 ? 0.f : convert_to<float>(x[token]) - lse;
  }
  if (top_n == 0) return;
  // top-n: each thread's sorted list of its n best keys, then n rounds of a block maximum.
  u64 mine[kMaxTop];
  int have = 0;
  if (n > 0) {
    for (i64 i = threadIdx.x; i < vocab; i += blockDim.x) {
      const float l = convert_to<float>(x[i]);
      if (l == -INFINITY) continue;
      const u64 k = pack_key(l, i);
      if (have == n && k <= mine[n - 1]) continue;
      int pos = have < n ? have++ : n - 1;
      while (pos > 0 && mine[pos - 1] < k) {
        mine[pos] = mine[pos - 1];
        --pos;
      }
      mine[pos] = k;
    }
  }
  int head = 0;
  for (int r = 0; r < top_n; ++r) {
    u64 best = 0;
    if (r < n) {
      const u64 cand = head < have ? mine[head] : 0;
      best = block_reduce(cand, sh.k_scratch, MaxU64{});
      if (best != 0 && head < have && mine[head] == best) ++head;
    }
    if (threadIdx.x == 0) {
      const bool ok = r < n && best != 0;
      const int id = ok ? key_id(best) : -1;
      top_ids[i64(row) * top_n + r] = id;
      top_logprobs[i64(row) * top_n + r] = ok ? convert_to<float>(x[id]) - lse : 0.f;
    }
  }
}

int chunk_count(i64 vocab) {
  return int((vocab + kChunk - 1) / kChunk);
}

}  // namespace

std::size_t sample_workspace_bytes(std::int64_t rows, std::int64_t vocab) {
  const std::size_t n = std::size_t(rows) * chunk_count(vocab);
  return n * sizeof(Partial) + n * sizeof(u64);
}

void launch_sample_tokens(const void* logits, ScalarType type, std::int64_t rows,
                          std::int64_t vocab, const std::int32_t* params, int top_n,
                          std::int32_t* tokens, float* logprobs, std::int32_t* top_ids,
                          float* top_logprobs, void* workspace, std::size_t workspace_bytes,
                          cudaStream_t stream) {
  if (rows == 0) return;
  if (top_n < 0 || top_n > kMaxTop) throw_op_error("sample_tokens", "top_n must be in [0, 32]");
  if (!workspace || workspace_bytes < sample_workspace_bytes(rows, vocab)) {
    throw_op_error("sample_tokens", "workspace smaller than sample_workspace_bytes()");
  }
  const int chunks = chunk_count(vocab);
  auto* part = static_cast<Partial*>(workspace);
  auto* gum = reinterpret_cast<u64*>(part + std::size_t(rows) * chunks);
  const dim3 grid{unsigned(chunks), unsigned(rows)};
  DIFFTX_DISPATCH_F32_BF16("sample_tokens", type, T, {
    const T* x = static_cast<const T*>(logits);
    const bool pdl = pdl_enabled("sample");
    DIFFTX_CUDA_CHECK("sample_tokens",
                      launch_pdl(sample_partial_kernel<T>, grid, dim3(kPartThreads), 0, stream, pdl,
                                 x, vocab, chunks, part));
    DIFFTX_CUDA_CHECK("sample_tokens",
                      launch_pdl(sample_gumbel_kernel<T>, grid, dim3(kPartThreads), 0, stream, pdl,
                                 x, params, vocab, chunks, part, gum));
    DIFFTX_CUDA_CHECK("sample_tokens",
                      launch_pdl(sample_final_kernel<T>, dim3(unsigned(rows)), dim3(kFinalThreads),
                                 0, stream, pdl, x, params, vocab, chunks, part, gum, top_n, tokens,
                                 logprobs, top_ids, top_logprobs));
  })
}

}  // namespace difftx::cuda
