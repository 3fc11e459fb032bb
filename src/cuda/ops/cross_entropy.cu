// Cross-entropy: kernel and launcher (see cross_entropy.cuh). Rows whose length and address
// allow it are read in 16-byte packs.
#include <cmath>

#include "cross_entropy.cuh"
#include "device_util.cuh"

namespace difftx::cuda {
namespace {

// Running (max, sum of exp(x - max)) of a thread's share of a row.
struct OnlineSoftmax {
  float m = -INFINITY;
  float s = 0.f;
  __device__ __forceinline__ void add(float v) {
    if (v > m) {
      s = s * expf(m - v) + 1.f;  // m = -inf at start: expf(-inf) = 0
      m = v;
    } else {
      s += expf(v - m);
    }
  }
  __device__ __forceinline__ void merge(float om, float os) {
    const float nm = fmaxf(m, om);
    if (nm == -INFINITY) return;  // both empty
    s = (m == -INFINITY ? 0.f : s * expf(m - nm)) + (om == -INFINITY ? 0.f : os * expf(om - nm));
    m = nm;
  }
};

// No __restrict__ on logits/dlogits: they may alias. Every element of the row is read in the
// first pass, before the block-wide barrier of the reduction, and each element of the second
// pass is read and then written by the same thread.
template <typename T, bool kPacked>
__global__ void cross_entropy_kernel(const T* logits, const std::int32_t* __restrict__ targets,
                                     float grad_scale, float* __restrict__ losses, T* dlogits,
                                     i64 vocab) {
  using P = Pack<T>;
  __shared__ float red_m[32], red_s[32];
  __shared__ float row_lse;
  const i64 row = blockIdx.x;
  const T* x = logits + row * vocab;
  const std::int32_t target = targets[row];
  float target_logit = 0.f;
  if (threadIdx.x == 0 && target >= 0 && target < vocab)
    target_logit = convert_to<float>(x[target]);

  OnlineSoftmax acc;
  if constexpr (kPacked) {
    const i64 packs = vocab / P::size;
    for (i64 p = threadIdx.x; p < packs; p += blockDim.x) {
      const P pk = reinterpret_cast<const P*>(x)[p];
#pragma unroll
      for (int j = 0; j < P::size; ++j) acc.add(convert_to<float>(pk.v[j]));
    }
  } else {
    for (i64 c = threadIdx.x; c < vocab; c += blockDim.x) acc.add(convert_to<float>(x[c]));
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) {
    const float om = __shfl_xor_sync(0xffffffffu, acc.m, offset);
    const float os = __shfl_xor_sync(0xffffffffu, acc.s, offset);
    acc.merge(om, os);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  if (lane == 0) {
    red_m[warp] = acc.m;
    red_s[warp] = acc.s;
  }
  __syncthreads();
  if (warp == 0) {
    OnlineSoftmax total;
    if (lane < warps) {
      total.m = red_m[lane];
      total.s = red_s[lane];
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
      const float om = __shfl_xor_sync(0xffffffffu, total.m, offset);
      const float os = __shfl_xor_sync(0xffffffffu, total.s, offset);
      total.merge(om, os);
    }
    if (lane == 0) {
      const float lse = total.m + logf(total.s);
      row_lse = lse;
      float loss = 0.f;
      if (target >= vocab) {
        loss = __int_as_float(0x7fc00000);
      } else if (target >= 0) {
        loss = lse - target_logit;
      }
      losses[row] = loss;
    }
  }
  if (dlogits == nullptr) return;
  __syncthreads();
  const float lse = row_lse;
  const bool ignored = target < 0;
  T* d = dlogits + row * vocab;
  if constexpr (kPacked) {
    const i64 packs = vocab / P::size;
    for (i64 p = threadIdx.x; p < packs; p += blockDim.x) {
      const P pk = reinterpret_cast<const P*>(x)[p];
      P out;
#pragma unroll
      for (int j = 0; j < P::size; ++j) {
        const i64 c = p * P::size + j;
        const float prob = expf(convert_to<float>(pk.v[j]) - lse);
        const float g = ignored ? 0.f : (prob - (c == target ? 1.f : 0.f)) * grad_scale;
        out.v[j] = convert_to<T>(g);
      }
      reinterpret_cast<P*>(d)[p] = out;
    }
  } else {
    for (i64 c = threadIdx.x; c < vocab; c += blockDim.x) {
      const float prob = expf(convert_to<float>(x[c]) - lse);
      const float g = ignored ? 0.f : (prob - (c == target ? 1.f : 0.f)) * grad_scale;
      d[c] = convert_to<T>(g);
    }
  }
}

}  // namespace

void launch_cross_entropy(const void* logits, ScalarType type, const std::int32_t* targets,
                          float grad_scale, float* losses, void* dlogits, std::int64_t n,
                          std::int64_t vocab, cudaStream_t stream) {
  if (n == 0) return;
  if (n > 0x7fffffff) throw_op_error("cross_entropy", "more than 2^31-1 rows");
  const int threads = vocab >= 16384 ? 1024 : vocab >= 2048 ? 512 : 128;
  DIFFTX_DISPATCH_F32_BF16("cross_entropy", type, T, {
    const bool packed = vocab % Pack<T>::size == 0 && aligned16(logits) &&
                        (dlogits == nullptr || aligned16(dlogits));
    const T* x = static_cast<const T*>(logits);
    T* d = static_cast<T*>(dlogits);
    if (packed) {
      cross_entropy_kernel<T, true>
          <<<unsigned(n), threads, 0, stream>>>(x, targets, grad_scale, losses, d, vocab);
    } else {
      cross_entropy_kernel<T, false>
          <<<unsigned(n), threads, 0, stream>>>(x, targets, grad_scale, losses, d, vocab);
    }
  })
  DIFFTX_CUDA_CHECK_LAUNCH("cross_entropy", "cross_entropy_kernel");
}

}  // namespace difftx::cuda
