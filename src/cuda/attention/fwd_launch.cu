// Forward launchers: the instantiated tile configurations of the forward kernels (wgmma on
// sm_90a, mma.sync elsewhere; the fused DIFF V2 forward on sm_90a only) and the grid (query
// tiles, heads, batch; the longest tiles first).
#include "fwd_kernel.cuh"
#include "fwd_kernel_sm90.cuh"
#include "launch.h"
#include "tma_map.h"

namespace difftx::cuda::attn {
namespace {

//                              d    diff  row warps  BN  min blocks/SM
using FwdSoftmax64 = FwdTraits<64, false, 8, 64, 2>;
using FwdSoftmax128 = FwdTraits<128, false, 8, 64, 1>;
using FwdDiff64 = FwdTraits<64, true, 4, 64, 2>;
using FwdDiff128 = FwdTraits<128, true, 4, 64, 1>;
//                                     d    mode                BN  stages
using FwdSm90Softmax64 = FwdSm90Traits<64, FwdMode::softmax, 128, 4>;
using FwdSm90Softmax128 = FwdSm90Traits<128, FwdMode::softmax, 128, 3>;
using FwdSm90Diff64 = FwdSm90Traits<64, FwdMode::diff_v1, 128, 3>;
using FwdSm90Diff128 = FwdSm90Traits<128, FwdMode::diff_v1, 64, 3>;
using FwdSm90V2_64 = FwdSm90Traits<64, FwdMode::diff_v2, 128, 4>;
using FwdSm90V2_128 = FwdSm90Traits<128, FwdMode::diff_v2, 128, 3>;

template <class Tr, class Kernel, class... Extra>
cudaError_t launch(Kernel kernel, FwdParams p, cudaStream_t stream, const Extra&... extra) {
  static const cudaError_t attr =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kSmemBytes);
  if (attr != cudaSuccess) return attr;
  p.num_m_blocks = (p.q_len + Tr::kBlockM - 1) / Tr::kBlockM;
  const dim3 grid(p.num_m_blocks, p.heads, p.batch);
  kernel<<<grid, Tr::kThreads, Tr::kSmemBytes, stream>>>(p, extra...);
  return cudaGetLastError();
}

template <class Tr>
cudaError_t launch_mma(const FwdParams& p, cudaStream_t stream) {
  return launch<Tr>(attention_fwd_kernel<Tr>, p, stream);
}
template <class Tr>
cudaError_t launch_sm90(const FwdParams& p, cudaStream_t stream) {
  TileMaps maps{};
  const cudaError_t e =
      make_qkv_maps(&maps, operand_layout<Tr::kD, Tr::kDV>(p), Tr::kQRows, Tr::kBlockN);
  if (e != cudaSuccess) return e;
  return launch<Tr>(attention_fwd_sm90_kernel<Tr>, p, stream, maps);
}

}  // namespace

cudaError_t launch_fwd_v2(const FwdParams& p, int d, cudaStream_t stream) {
  return d == 64 ? launch_sm90<FwdSm90V2_64>(p, stream) : launch_sm90<FwdSm90V2_128>(p, stream);
}

cudaError_t launch_fwd(const FwdParams& p, int d, bool diff, AttentionKernels kernels,
                       cudaStream_t stream) {
  if (kernels == AttentionKernels::sm90) {
    if (diff)
      return d == 64 ? launch_sm90<FwdSm90Diff64>(p, stream)
                     : launch_sm90<FwdSm90Diff128>(p, stream);
    return d == 64 ? launch_sm90<FwdSm90Softmax64>(p, stream)
                   : launch_sm90<FwdSm90Softmax128>(p, stream);
  }
  if (diff) return d == 64 ? launch_mma<FwdDiff64>(p, stream) : launch_mma<FwdDiff128>(p, stream);
  return d == 64 ? launch_mma<FwdSoftmax64>(p, stream) : launch_mma<FwdSoftmax128>(p, stream);
}

}  // namespace difftx::cuda::attn
