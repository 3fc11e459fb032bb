// Checked entry points of the fused attention kernels (include/difftx/cuda/attention.h): validate
// geometry, pointers and strides, throw difftx::Error with the offending value, then launch.
#include "difftx/cuda/attention.h"

#include <cmath>
#include <cstdint>

#include "difftx/core/error.h"
#include "difftx/model/backend.h"
#include "launch.h"

namespace difftx::cuda {
namespace {

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("CUDA attention: {} failed: {}", what, cudaGetErrorString(e));
}

void check_ptr(const void* p, const char* name) {
  DIFFTX_CHECK(p != nullptr, "CUDA attention: {} is null", name);
  DIFFTX_CHECK(reinterpret_cast<std::uintptr_t>(p) % 16 == 0,
               "CUDA attention: {} must be 16-byte aligned (got address {})", name, p);
}

void check_stride(std::int64_t stride, std::int64_t min, const char* name) {
  DIFFTX_CHECK(stride >= min, "CUDA attention: {} = {} is smaller than heads*dim = {}", name,
               stride, min);
  DIFFTX_CHECK(stride % 8 == 0, "CUDA attention: {} = {} must be a multiple of 8 elements",
               name, stride);
}

// Validates the geometry of a softmax (diff = false) or DIFF V1 (diff = true) call.
void check_geometry(const AttentionGeometry& g, bool diff) {
  const char* op = diff ? "diff_attention" : "softmax_attention";
  DIFFTX_CHECK(g.head_dim == 64 || g.head_dim == 128,
               "CUDA {}: head_dim {} is not supported (64 or 128)", op, g.head_dim);
  const int dv = diff ? 2 * g.head_dim : g.head_dim;
  DIFFTX_CHECK(g.v_head_dim == dv, "CUDA {}: v_head_dim {} must be {} for head_dim {}", op,
               g.v_head_dim, dv, g.head_dim);
  DIFFTX_CHECK(g.batch >= 1 && g.batch <= 65535, "CUDA {}: batch {} out of range [1, 65535]", op,
               g.batch);
  DIFFTX_CHECK(g.q_len >= 1, "CUDA {}: q_len {} must be >= 1", op, g.q_len);
  DIFFTX_CHECK(g.q_len <= (1 << 22), "CUDA {}: q_len {} exceeds 4M tokens", op, g.q_len);
  DIFFTX_CHECK(g.q_offset >= 0, "CUDA {}: q_offset {} is negative", op, g.q_offset);
  DIFFTX_CHECK(g.kv_len >= g.q_offset + g.q_len,
               "CUDA {}: kv_len {} < q_offset {} + q_len {}", op, g.kv_len, g.q_offset, g.q_len);
  DIFFTX_CHECK(g.kv_len <= (1 << 22), "CUDA {}: kv_len {} exceeds 4M tokens", op, g.kv_len);
  DIFFTX_CHECK(g.q_heads <= 65535, "CUDA {}: q_heads {} exceeds 65535", op, g.q_heads);
  DIFFTX_CHECK(g.q_heads >= 1 && g.k_heads >= 1 && g.v_heads >= 1,
               "CUDA {}: head counts must be positive (q {}, k {}, v {})", op, g.q_heads,
               g.k_heads, g.v_heads);
  if (diff) {
    DIFFTX_CHECK(g.q_heads % 2 == 0 && g.k_heads == 2 * g.v_heads,
                 "CUDA diff_attention: q_heads {} must be even and k_heads {} = 2 * v_heads {}",
                 g.q_heads, g.k_heads, g.v_heads);
    DIFFTX_CHECK((g.q_heads / 2) % g.v_heads == 0,
                 "CUDA diff_attention: heads {} not a multiple of kv heads {}", g.q_heads / 2,
                 g.v_heads);
  } else {
    DIFFTX_CHECK(g.v_heads == g.k_heads && g.q_heads % g.k_heads == 0,
                 "CUDA softmax_attention: q_heads {} must be a multiple of k_heads {} = v_heads {}",
                 g.q_heads, g.k_heads, g.v_heads);
  }
  DIFFTX_CHECK(std::isfinite(g.scale) && g.scale > 0.0, "CUDA {}: scale {} must be positive",
               op, g.scale);
  check_stride(g.q_row_stride, static_cast<std::int64_t>(g.q_heads) * g.head_dim, "q_row_stride");
  check_stride(g.kv_row_stride_k, static_cast<std::int64_t>(g.k_heads) * g.head_dim,
               "kv_row_stride_k");
  check_stride(g.kv_row_stride_v, static_cast<std::int64_t>(g.v_heads) * dv, "kv_row_stride_v");
}

int out_heads(const AttentionGeometry& g, bool diff) { return diff ? g.q_heads / 2 : g.q_heads; }

int n_rep(const AttentionGeometry& g, bool diff) {
  return diff ? (g.q_heads / 2) / g.v_heads : g.q_heads / g.k_heads;
}

std::size_t align256(std::size_t n) { return (n + 255) / 256 * 256; }

int padded_rows(int q_len) { return (q_len + attn::kRowPad - 1) / attn::kRowPad * attn::kRowPad; }

struct WorkspaceLayout {
  std::size_t dq_bytes, row_bytes, total;
};

WorkspaceLayout workspace_layout(const AttentionGeometry& g) {
  WorkspaceLayout w{};
  w.dq_bytes = align256(static_cast<std::size_t>(g.batch) * g.q_len * g.q_heads * g.head_dim *
                        sizeof(float));
  w.row_bytes =
      align256(static_cast<std::size_t>(g.batch) * g.q_heads * padded_rows(g.q_len) * sizeof(float));
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

void forward(const AttentionGeometry& g, bool diff, const bf16* q, const bf16* k, const bf16* v,
             const float* lambda, bf16* out, bf16* out2, float* lse, cudaStream_t stream) {
  check_geometry(g, diff);
  check_ptr(q, "q");
  check_ptr(k, "k");
  check_ptr(v, "v");
  check_ptr(out, "out");
  DIFFTX_CHECK(lse != nullptr, "CUDA attention: lse is null");
  if (diff) {
    DIFFTX_CHECK(lambda != nullptr, "CUDA diff_attention: lambda is null");
    if (out2 != nullptr) check_ptr(out2, "out2");
  }
  attn::FwdParams p = fwd_params(g, q, k, v, out_heads(g, diff), n_rep(g, diff));
  p.out = out;
  p.out2 = diff ? out2 : nullptr;
  p.lse = lse;
  p.lambda = lambda;
  check_cuda(attn::launch_fwd(p, g.head_dim, diff, stream), "forward launch");
}

void forward_v2(const AttentionGeometry& g, const bf16* q, const bf16* k, const bf16* v,
                const bf16* gate, bf16* att, bf16* out, float* lse, cudaStream_t stream) {
  check_geometry(g, false);
  DIFFTX_CHECK(g.q_heads % 2 == 0 && (g.q_heads / g.k_heads) % 2 == 0,
               "CUDA diff_v2_attention: q_heads {} must be even with an even number per kv head "
               "(k_heads {}), so the two heads of a pair share a kv head",
               g.q_heads, g.k_heads);
  check_ptr(q, "q");
  check_ptr(k, "k");
  check_ptr(v, "v");
  check_ptr(att, "att");
  check_ptr(out, "out");
  DIFFTX_CHECK(gate != nullptr, "CUDA diff_v2_attention: gate is null");
  DIFFTX_CHECK(lse != nullptr, "CUDA diff_v2_attention: lse is null");
  DIFFTX_CHECK(attn::fused_v2_available(),
               "CUDA diff_v2_attention: the fused V2 forward needs a Hopper GPU (sm_90a); check "
               "diff_v2_attention_fused_available() first");
  // one unit of work = a pair of query heads
  attn::FwdParams p = fwd_params(g, q, k, v, g.q_heads / 2, (g.q_heads / 2) / g.k_heads);
  p.out = out;
  p.att = att;
  p.gate = gate;
  p.lse = lse;
  check_cuda(attn::launch_fwd_v2(p, g.head_dim, stream), "diff_v2 forward launch");
}

void backward(const AttentionGeometry& g, bool diff, const bf16* q, const bf16* k, const bf16* v,
              const float* lambda, const bf16* out, const bf16* out2, const float* lse,
              const bf16* dout, bf16* dq, bf16* dk, bf16* dv, float* dlambda, void* workspace,
              std::size_t workspace_bytes, cudaStream_t stream) {
  check_geometry(g, diff);
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
    check_cuda(cudaMallocAsync(&workspace, w.total, stream), "workspace allocation");
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
  const int heads = out_heads(g, diff);

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
    e = attn::launch_bwd(p, g.head_dim, diff, stream);
  }
  if (e == cudaSuccess) {
    e = attn::launch_dq_convert(dq_accum, dq, static_cast<std::int64_t>(g.batch) * g.q_len,
                                g.q_heads, g.head_dim, g.q_row_stride,
                                static_cast<float>(g.scale), stream);
  }
  if (owned) {
    const cudaError_t f = cudaFreeAsync(workspace, stream);
    if (e == cudaSuccess) e = f;
  }
  check_cuda(e, "backward launch");
}

}  // namespace

void softmax_attention_forward(const AttentionGeometry& g, const bf16* q, const bf16* k,
                               const bf16* v, bf16* out, float* lse, cudaStream_t stream) {
  forward(g, false, q, k, v, nullptr, out, nullptr, lse, stream);
}

std::size_t attention_backward_workspace_bytes(const AttentionGeometry& g) {
  return workspace_layout(g).total;
}

void softmax_attention_backward(const AttentionGeometry& g, const bf16* q, const bf16* k,
                                const bf16* v, const bf16* out, const float* lse,
                                const bf16* dout, bf16* dq, bf16* dk, bf16* dv, void* workspace,
                                std::size_t workspace_bytes, cudaStream_t stream) {
  backward(g, false, q, k, v, nullptr, out, nullptr, lse, dout, dq, dk, dv, nullptr, workspace,
           workspace_bytes, stream);
}

bool diff_v2_attention_fused_available() { return attn::fused_v2_available(); }

void diff_v2_attention_forward(const AttentionGeometry& g, const bf16* q, const bf16* k,
                               const bf16* v, const bf16* gate, bf16* att, bf16* out, float* lse,
                               cudaStream_t stream) {
  forward_v2(g, q, k, v, gate, att, out, lse, stream);
}

void diff_attention_forward(const AttentionGeometry& g, const bf16* q, const bf16* k,
                            const bf16* v, const float* lambda, bf16* out, bf16* out2,
                            float* lse, cudaStream_t stream) {
  forward(g, true, q, k, v, lambda, out, out2, lse, stream);
}

void diff_attention_backward(const AttentionGeometry& g, const bf16* q, const bf16* k,
                             const bf16* v, const float* lambda, const bf16* out,
                             const bf16* out2, const float* lse, const bf16* dout, bf16* dq,
                             bf16* dk, bf16* dv, float* dlambda, void* workspace,
                             std::size_t workspace_bytes, cudaStream_t stream) {
  backward(g, true, q, k, v, lambda, out, out2, lse, dout, dq, dk, dv, dlambda, workspace,
           workspace_bytes, stream);
}

}  // namespace difftx::cuda
