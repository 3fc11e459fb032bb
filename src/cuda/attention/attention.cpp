// The attention launchers of include/difftx/cuda/attention/attention.h: each takes a checked
// AttentionPlan (plan.cpp), checks its pointers (non-null, 16-byte aligned), fills the kernel
// parameters and launches the kernel family the plan names.
#include "difftx/cuda/attention/attention.h"

#include <cstdint>

#include "difftx/core/error.h"
#include "difftx/cuda/common/check.h"
#include "difftx/cuda/common/launch.h"
#include "launch.h"

namespace difftx::cuda {
namespace {

constexpr const char* kOp = "CUDA attention";

void check_launch(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw_cuda_error(kOp, what, e, __FILE__, __LINE__);
}

void check_ptr(const void* p, const char* name) {
  DIFFTX_CHECK(p != nullptr, "CUDA attention: {} is null", name);
  DIFFTX_CHECK(aligned16(p), "CUDA attention: {} must be 16-byte aligned (got address {})", name,
               p);
}

void require_kind(const AttentionPlan& plan, AttentionKind kind, const char* launcher) {
  DIFFTX_CHECK(plan.kind() == kind, "CUDA attention: {} takes a {} plan, got a {} plan", launcher,
               attention_kind_name(kind), attention_kind_name(plan.kind()));
}

int n_rep(const AttentionGeometry& g, bool diff) {
  return diff ? (g.q_heads / 2) / g.v_heads : g.q_heads / g.k_heads;
}

std::size_t align256(std::size_t n) {
  return (n + 255) / 256 * 256;
}

int padded_rows(int q_len) {
  return (q_len + attn::kRowPad - 1) / attn::kRowPad * attn::kRowPad;
}

struct WorkspaceLayout {
  std::size_t dq_bytes, row_bytes, total;
};

WorkspaceLayout workspace_layout(const AttentionGeometry& g) {
  WorkspaceLayout w{};
  w.dq_bytes = align256(static_cast<std::size_t>(g.batch) * g.q_len * g.q_heads * g.head_dim *
                        sizeof(float));
  w.row_bytes = align256(static_cast<std::size_t>(g.batch) * g.q_heads * padded_rows(g.q_len) *
                         sizeof(float));
  w.total = w.dq_bytes + 2 * w.row_bytes;
  return w;
}

// The geometry part of a forward launch; `heads` units of work per (batch, query tile), each
// kv head serving n_rep of them.
attn::FwdParams fwd_params(const AttentionGeometry& g, const bf16* q, const bf16* k, const bf16* v,
                           int heads, int n_rep) {
  attn::FwdParams p{};
  p.q = q;
  p.k = k;
  p.v = v;
  p.batch = g.batch;
  p.q_len = g.q_len;
  p.kv_len = g.kv_len;
  p.q_offset = g.q_offset;
  p.q_comps = g.q_heads;
  p.k_comps = g.k_heads;
  p.v_heads = g.v_heads;
  p.heads = heads;
  p.n_rep = n_rep;
  p.q_stride = g.q_row_stride;
  p.k_stride = g.kv_row_stride_k;
  p.v_stride = g.kv_row_stride_v;
  p.scale_log2 = static_cast<float>(g.scale * 1.4426950408889634);
  return p;
}

void forward(const AttentionPlan& plan, bool diff, const bf16* q, const bf16* k, const bf16* v,
             const float* lambda, bf16* out, bf16* out2, float* lse, cudaStream_t stream) {
  const AttentionGeometry& g = plan.geometry();
  check_ptr(q, "q");
  check_ptr(k, "k");
  check_ptr(v, "v");
  check_ptr(out, "out");
  DIFFTX_CHECK(lse != nullptr, "CUDA attention: lse is null");
  if (diff) {
    DIFFTX_CHECK(lambda != nullptr, "CUDA diff_attention: lambda is null");
    if (out2 != nullptr) check_ptr(out2, "out2");
  }
  attn::FwdParams p = fwd_params(g, q, k, v, plan.out_heads(), n_rep(g, diff));
  p.out = out;
  p.out2 = diff ? out2 : nullptr;
  p.lse = lse;
  p.lambda = lambda;
  check_launch(attn::launch_fwd(p, g.head_dim, diff, plan.kernels(), stream), "forward launch");
}

void backward(const AttentionPlan& plan, bool diff, const bf16* q, const bf16* k, const bf16* v,
              const float* lambda, const bf16* out, const bf16* out2, const float* lse,
              const bf16* dout, bf16* dq, bf16* dk, bf16* dv, float* dlambda, void* workspace,
              std::size_t workspace_bytes, cudaStream_t stream) {
  const AttentionGeometry& g = plan.geometry();
  check_ptr(q, "q");
  check_ptr(k, "k");
  check_ptr(v, "v");
  check_ptr(out, "out");
  check_ptr(dout, "dout");
  check_ptr(dq, "dq");
  check_ptr(dk, "dk");
  check_ptr(dv, "dv");
  check_ptr(lse, "lse");
  if (diff) {
    check_ptr(out2, "out2");
    DIFFTX_CHECK(lambda != nullptr, "CUDA diff_attention: lambda is null");
    DIFFTX_CHECK(dlambda != nullptr, "CUDA diff_attention: dlambda is null");
  }
  const WorkspaceLayout w = workspace_layout(g);
  bool owned = false;
  if (workspace == nullptr) {
    check_launch(cudaMallocAsync(&workspace, w.total, stream), "workspace allocation");
    owned = true;
  } else {
    DIFFTX_CHECK(workspace_bytes >= w.total,
                 "CUDA attention: workspace of {} bytes is smaller than the {} bytes needed",
                 workspace_bytes, w.total);
    check_ptr(workspace, "workspace");
  }
  auto* base = static_cast<unsigned char*>(workspace);
  auto* dq_accum = reinterpret_cast<float*>(base);
  auto* lse_log2 = reinterpret_cast<float*>(base + w.dq_bytes);
  auto* delta = reinterpret_cast<float*>(base + w.dq_bytes + w.row_bytes);
  const int t_pad = padded_rows(g.q_len);
  const int heads = plan.out_heads();

  cudaError_t e = cudaMemsetAsync(dq_accum, 0, w.dq_bytes, stream);
  if (e == cudaSuccess) {
    attn::PreParams pre{};
    pre.dout = dout;
    pre.out = out;
    pre.out2 = diff ? out2 : nullptr;
    pre.lse = lse;
    pre.lambda = lambda;
    pre.dlambda = diff ? dlambda : nullptr;
    pre.lse_log2 = lse_log2;
    pre.delta = delta;
    pre.q_len = g.q_len;
    pre.t_pad = t_pad;
    pre.heads = heads;
    pre.q_comps = g.q_heads;
    e = attn::launch_bwd_preprocess(pre, g.batch, g.v_head_dim, diff, stream);
  }
  if (e == cudaSuccess) {
    attn::BwdParams p{};
    p.q = q;
    p.k = k;
    p.v = v;
    p.dout = dout;
    p.lse_log2 = lse_log2;
    p.delta = delta;
    p.dq_accum = dq_accum;
    p.dk = dk;
    p.dv = dv;
    p.lambda = lambda;
    p.batch = g.batch;
    p.q_len = g.q_len;
    p.kv_len = g.kv_len;
    p.q_offset = g.q_offset;
    p.t_pad = t_pad;
    p.q_comps = g.q_heads;
    p.k_comps = g.k_heads;
    p.v_heads = g.v_heads;
    p.heads = heads;
    p.n_rep = n_rep(g, diff);
    p.q_stride = g.q_row_stride;
    p.k_stride = g.kv_row_stride_k;
    p.v_stride = g.kv_row_stride_v;
    p.scale = static_cast<float>(g.scale);
    p.scale_log2 = static_cast<float>(g.scale * 1.4426950408889634);
    e = attn::launch_bwd(p, g.head_dim, diff, plan.kernels(), stream);
  }
  if (e == cudaSuccess) {
    e = attn::launch_dq_convert(dq_accum, dq, static_cast<std::int64_t>(g.batch) * g.q_len,
                                g.q_heads, g.head_dim, g.q_row_stride, static_cast<float>(g.scale),
                                stream);
  }
  if (owned) {
    const cudaError_t f = cudaFreeAsync(workspace, stream);
    if (e == cudaSuccess) e = f;
  }
  check_launch(e, "backward launch");
}

}  // namespace

std::size_t AttentionPlan::backward_workspace_bytes() const {
  return workspace_layout(g_).total;
}

void softmax_attention_forward(const AttentionPlan& plan, const bf16* q, const bf16* k,
                               const bf16* v, bf16* out, float* lse, cudaStream_t stream) {
  require_kind(plan, AttentionKind::softmax, "softmax_attention_forward");
  forward(plan, false, q, k, v, nullptr, out, nullptr, lse, stream);
}

void softmax_attention_backward(const AttentionPlan& plan, const bf16* q, const bf16* k,
                                const bf16* v, const bf16* out, const float* lse, const bf16* dout,
                                bf16* dq, bf16* dk, bf16* dv, void* workspace,
                                std::size_t workspace_bytes, cudaStream_t stream) {
  require_kind(plan, AttentionKind::softmax, "softmax_attention_backward");
  backward(plan, false, q, k, v, nullptr, out, nullptr, lse, dout, dq, dk, dv, nullptr, workspace,
           workspace_bytes, stream);
}

void diff_v2_attention_forward(const AttentionPlan& plan, const bf16* q, const bf16* k,
                               const bf16* v, const bf16* gate, bf16* att, bf16* out, float* lse,
                               cudaStream_t stream) {
  require_kind(plan, AttentionKind::diff_v2, "diff_v2_attention_forward");
  const AttentionGeometry& g = plan.geometry();
  check_ptr(q, "q");
  check_ptr(k, "k");
  check_ptr(v, "v");
  check_ptr(att, "att");
  check_ptr(out, "out");
  DIFFTX_CHECK(gate != nullptr, "CUDA diff_v2_attention: gate is null");
  DIFFTX_CHECK(lse != nullptr, "CUDA diff_v2_attention: lse is null");
  // one unit of work = a pair of query heads
  attn::FwdParams p = fwd_params(g, q, k, v, plan.out_heads(), plan.out_heads() / g.k_heads);
  p.out = out;
  p.att = att;
  p.gate = gate;
  p.lse = lse;
  check_launch(attn::launch_fwd_v2(p, g.head_dim, stream), "diff_v2 forward launch");
}

void diff_attention_forward(const AttentionPlan& plan, const bf16* q, const bf16* k, const bf16* v,
                            const float* lambda, bf16* out, bf16* out2, float* lse,
                            cudaStream_t stream) {
  require_kind(plan, AttentionKind::diff_v1, "diff_attention_forward");
  forward(plan, true, q, k, v, lambda, out, out2, lse, stream);
}

void diff_attention_backward(const AttentionPlan& plan, const bf16* q, const bf16* k, const bf16* v,
                             const float* lambda, const bf16* out, const bf16* out2,
                             const float* lse, const bf16* dout, bf16* dq, bf16* dk, bf16* dv,
                             float* dlambda, void* workspace, std::size_t workspace_bytes,
                             cudaStream_t stream) {
  require_kind(plan, AttentionKind::diff_v1, "diff_attention_backward");
  backward(plan, true, q, k, v, lambda, out, out2, lse, dout, dq, dk, dv, dlambda, workspace,
           workspace_bytes, stream);
}

}  // namespace difftx::cuda
