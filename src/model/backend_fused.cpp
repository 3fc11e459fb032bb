// Default implementations of the Backend's fused decode-path ops (backend.h): the unfused
// sequence of ops they stand for. A backend overrides them where fusing saves a pass or a launch;
// these are also the reference its fused versions are tested against.
#include "difftx/core/error.h"
#include "difftx/model/backend.h"

namespace difftx {

void Backend::rmsnorm_linear_forward_concat(const Tensor& x, const Tensor& norm_w, double eps,
                                            const std::vector<const Tensor*>& ws, Tensor& xn,
                                            Tensor& rstd, Tensor& out) {
  rmsnorm_forward(x, norm_w, eps, 1.0, xn, rstd);
  linear_forward_concat(xn, ws, out);
}

void Backend::rmsnorm_swiglu_linear_forward(const Tensor& x, const Tensor& norm_w, double eps,
                                            const Tensor& w_gate, const Tensor& w_up, Tensor& xn,
                                            Tensor& rstd, Tensor& gate, Tensor& up, Tensor& out) {
  rmsnorm_forward(x, norm_w, eps, 1.0, xn, rstd);
  swiglu_linear_forward(xn, w_gate, w_up, gate, up, out);
}

void Backend::rope_kv_cache_write(Tensor& qkv, std::int64_t row_stride, const Tensor& positions,
                                  int q_heads, int k_heads, int head_dim, double theta,
                                  RopeStyle style, const Tensor& slots, Tensor& k_pool,
                                  Tensor& v_pool) {
  rope_positions(qkv, row_stride, positions, q_heads + k_heads, head_dim, theta, style);
  // the k and v blocks as flat views starting at their first column
  const Tensor flat = qkv.reshape({qkv.numel()});
  const std::int64_t k_col = std::int64_t(q_heads) * head_dim;
  const std::int64_t v_col = k_col + std::int64_t(k_heads) * head_dim;
  kv_cache_write(flat.rows(k_col, flat.numel()), row_stride, flat.rows(v_col, flat.numel()),
                 row_stride, slots, k_pool, v_pool);
}

void Backend::rmsnorm_qkv_rope_kv_write(const Tensor& x, const Tensor& norm_w, double eps,
                                        const Tensor& wq, const Tensor& wk, const Tensor& wv,
                                        Tensor& xn, Tensor& rstd, Tensor& qkv,
                                        const Tensor& positions, int head_dim, double theta,
                                        RopeStyle style, const Tensor& slots, Tensor& k_pool,
                                        Tensor& v_pool) {
  DIFFTX_CHECK(head_dim > 0 && wq.ndim() == 2 && wk.ndim() == 2 && wv.ndim() == 2 &&
                   wq.dim(0) % head_dim == 0 && wk.dim(0) % head_dim == 0,
               "rmsnorm_qkv_rope_kv_write: W_q {} and W_k {} are not whole heads of {}",
               wq.describe(), wk.describe(), head_dim);
  rmsnorm_linear_forward_concat(x, norm_w, eps, {&wq, &wk, &wv}, xn, rstd, qkv);
  const std::int64_t width = wq.dim(0) + wk.dim(0) + wv.dim(0);
  rope_kv_cache_write(qkv, width, positions, static_cast<int>(wq.dim(0) / head_dim),
                      static_cast<int>(wk.dim(0) / head_dim), head_dim, theta, style, slots, k_pool,
                      v_pool);
}

void Backend::paged_attention_decode_head_norm(const PagedAttentionGeometry& g, const Tensor& q,
                                               const Tensor& k_pool, const Tensor& v_pool,
                                               const Tensor& block_tables,
                                               const Tensor& context_lens, const Tensor& lambda,
                                               const Tensor& head_norm, double eps, double scale,
                                               Tensor& att, Tensor& out, Tensor& head_rstd,
                                               Tensor& workspace) {
  DIFFTX_CHECK(g.kind == PagedAttentionKind::diff,
               "paged_attention_decode_head_norm: the head norm is DIFF V1's");
  paged_attention_decode(g, q, k_pool, v_pool, block_tables, context_lens, lambda, att, workspace);
  const std::int64_t rows = std::int64_t(g.batch) * g.out_heads();
  const Tensor heads = att.reshape({rows, g.v_head_dim});
  Tensor normed = out.reshape({rows, g.v_head_dim});
  rmsnorm_forward(heads, head_norm, eps, scale, normed, head_rstd);
}

}  // namespace difftx
