// Backward launchers: preprocess, the instantiated configurations of the backward kernels (wgmma
// on sm_90a, mma.sync elsewhere; grid: kv tiles, kv groups, batch, tile 0 (which sees the most
// queries) first) and the dQ conversion.
#include "bwd_kernel.cuh"
#include "bwd_kernel_sm90.cuh"
#include "bwd_kernel_sm90_split.cuh"
#include "bwd_prepost.cuh"
#include "launch.h"
#include "tma_map.h"

namespace difftx::cuda::attn {
namespace {

//                              d    diff  col warps  BM  min blocks/SM
using BwdSoftmax64 = BwdTraits<64, false, 8, 64, 1>;
using BwdSoftmax128 = BwdTraits<128, false, 8, 64, 1>;
using BwdDiff64 = BwdTraits<64, true, 4, 64, 1>;
using BwdDiff128 = BwdTraits<128, true, 4, 32, 1>;
using BwdSm90Softmax64 = BwdSm90Traits<64, false>;
using BwdSm90Softmax128 = BwdSm90Traits<128, false>;
using BwdSm90Diff128 = BwdSm90Traits<128, true>;

// kernel choice for launch_sm90: bwd_kernel_sm90.cuh (softmax; DIFF V1 d = 128, warpgroup = map)
// or bwd_kernel_sm90_split.cuh (DIFF V1 d = 64, warpgroup = half of a 128-row kv tile)
template <class Tr>
struct BwdSm90Kernel {
  static auto get() { return attention_bwd_sm90_kernel<Tr>; }
};
template <class Tr>
struct BwdSm90SplitKernel {
  static auto get() { return attention_bwd_sm90_split_kernel<Tr>; }
};

template <class Tr, class Kernel, class... Extra>
cudaError_t launch(Kernel kernel, BwdParams p, cudaStream_t stream, const Extra&... extra) {
  static const cudaError_t attr =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kSmemBytes);
  if (attr != cudaSuccess) return attr;
  p.num_n_blocks = (p.kv_len + Tr::kBlockN - 1) / Tr::kBlockN;
  const int groups = Tr::kDiff ? p.v_heads : p.k_comps;
  const dim3 grid(p.num_n_blocks, groups, p.batch);
  kernel<<<grid, Tr::kThreads, Tr::kSmemBytes, stream>>>(p, extra...);
  return cudaGetLastError();
}
template <class Tr>
cudaError_t launch_mma(const BwdParams& p, cudaStream_t stream) {
  return launch<Tr>(attention_bwd_kernel<Tr>, p, stream);
}
template <class Tr, template <class> class Kernel = BwdSm90Kernel>
cudaError_t launch_sm90(const BwdParams& p, cudaStream_t stream) {
  TileMaps maps{};
  cudaError_t e =
      make_qkv_maps(&maps, operand_layout<Tr::kD, Tr::kDV>(p), Tr::kBlockM, Tr::kBlockN);
  if (e == cudaSuccess) {
    const std::int64_t out_cols = static_cast<std::int64_t>(p.heads) * Tr::kDV;
    e = make_tile_map(&maps.dout, p.dout, out_cols, p.q_len, p.batch, out_cols, Tr::kBlockM);
  }
  if (e != cudaSuccess) return e;
  return launch<Tr>(Kernel<Tr>::get(), p, stream, maps);
}

template <int kDV, bool kDiff>
cudaError_t preprocess(const PreParams& p, int batch, cudaStream_t stream) {
  const dim3 grid(p.t_pad / 8, p.heads, batch);
  attention_bwd_preprocess_kernel<kDV, kDiff><<<grid, 256, 0, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_bwd_preprocess(const PreParams& p, int batch, int dv, bool diff,
                                  cudaStream_t stream) {
  switch (dv) {
    case 64:
      return preprocess<64, false>(p, batch, stream);
    case 128:
      return diff ? preprocess<128, true>(p, batch, stream)
                  : preprocess<128, false>(p, batch, stream);
    case 256:
      return preprocess<256, true>(p, batch, stream);
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t launch_bwd(const BwdParams& p, int d, bool diff, AttentionKernels kernels,
                       cudaStream_t stream) {
  if (kernels == AttentionKernels::sm90) {
    if (diff) {
      return d == 64 ? launch_sm90<BwdSm90SplitTraits, BwdSm90SplitKernel>(p, stream)
                     : launch_sm90<BwdSm90Diff128>(p, stream);
    }
    return d == 64 ? launch_sm90<BwdSm90Softmax64>(p, stream)
                   : launch_sm90<BwdSm90Softmax128>(p, stream);
  }
  if (diff) return d == 64 ? launch_mma<BwdDiff64>(p, stream) : launch_mma<BwdDiff128>(p, stream);
  return d == 64 ? launch_mma<BwdSoftmax64>(p, stream) : launch_mma<BwdSoftmax128>(p, stream);
}

cudaError_t launch_dq_convert(const float* acc, bf16* dq, std::int64_t rows, int comps, int d,
                              std::int64_t q_stride, float scale, cudaStream_t stream) {
  const std::int64_t chunks = rows * comps * d / 8;
  const unsigned blocks = static_cast<unsigned>((chunks + 255) / 256);
  attention_dq_convert_kernel<<<blocks, 256, 0, stream>>>(acc, dq, rows, comps, d, q_stride, scale);
  return cudaGetLastError();
}

}  // namespace difftx::cuda::attn
