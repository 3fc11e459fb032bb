// Internal launchers of the attention kernels (no validation here: the AttentionPlan and the
// launchers of attention.cpp check every argument first). Each returns the CUDA error of its
// launches; kernels are instantiated only for d in {64, 128} in fwd_launch.cu / bwd_launch.cu.
// The kernel family is the caller's choice (select_attention_kernels, made once per backend).
#pragma once

#include <cuda_runtime_api.h>

#include "difftx/cuda/attention/attention.h"
#include "params.cuh"

namespace difftx::cuda::attn {

constexpr int kRowPad = 64;  // lse_log2 / delta rows are padded to a multiple of this

cudaError_t launch_fwd(const FwdParams& p, int d, bool diff, AttentionKernels kernels,
                       cudaStream_t stream);
// DIFF V2 (softmax attention over head pairs + the gated combine in the epilogue): the sm90
// family only.
cudaError_t launch_fwd_v2(const FwdParams& p, int d, cudaStream_t stream);
cudaError_t launch_bwd_preprocess(const PreParams& p, int batch, int dv, bool diff,
                                  cudaStream_t stream);
cudaError_t launch_bwd(const BwdParams& p, int d, bool diff, AttentionKernels kernels,
                       cudaStream_t stream);
cudaError_t launch_dq_convert(const float* acc, __nv_bfloat16* dq, std::int64_t rows, int comps,
                              int d, std::int64_t q_stride, float scale, cudaStream_t stream);

}  // namespace difftx::cuda::attn
