// CudaBackend entries of the engine's inference ops (fused decode projections, paged KV cache,
// paged decode attention, per-token RoPE, device sampling), CUDA-graph capture of device work, and
// the free-memory query. Each entry checks its tensors, then calls the op's launcher on the stream.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>

#include "../ops/gemv.cuh"
#include "../ops/kv_cache.cuh"
#include "../ops/paged_attention.cuh"
#include "../ops/rope_positions.cuh"
#include "../ops/sample.cuh"
#include "cuda_backend.h"
#include "difftx/cuda/common/check.h"
#include "validate.h"

namespace difftx::cuda {
namespace {

using bf16 = __nv_bfloat16;

bool aligned16(const void* p) {
  return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0;
}

// Multiprocessors of the current device (asked once per process: one GPU per process).
int sm_count() {
  static const int count = [] {
    int device = 0, n = 0;
    DIFFTX_CUDA_CHECK("sm_count", cudaGetDevice(&device));
    DIFFTX_CUDA_CHECK("sm_count",
                      cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device));
    return n;
  }();
  return count;
}

void require_i32(const Tensor& t, std::int64_t numel, const char* op, const char* name) {
  require_dtype(t, op, name, {DType::i32});
  require_numel(t, numel, op, name);
}

// A (rows, width) operand with `stride` elements between rows, possibly a column block of a
// wider buffer.
void require_rows(const Tensor& t, std::int64_t rows, std::int64_t stride, std::int64_t width,
                  const char* op, const char* name) {
  DIFFTX_CHECK(stride >= width, "cuda backend: {}: {} row stride {} is below its width {}", op,
               name, stride, width);
  DIFFTX_CHECK(rows == 0 || t.numel() >= (rows - 1) * stride + width,
               "cuda backend: {}: {} is {}, too small for {} rows of stride {} and width {}", op,
               name, t.describe(), rows, stride, width);
}

class CudaGraph final : public CapturedWork {
 public:
  CudaGraph(cudaGraph_t graph, cudaGraphExec_t exec, cudaStream_t stream)
      : graph_(graph), exec_(exec), stream_(stream) {}
  ~CudaGraph() override {
    if (exec_) cudaGraphExecDestroy(exec_);
    if (graph_) cudaGraphDestroy(graph_);
  }
  void replay() override { DIFFTX_CUDA_CHECK("graph replay", cudaGraphLaunch(exec_, stream_)); }

 private:
  cudaGraph_t graph_;
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
};

}  // namespace

// ---- fused projections

namespace {

// The GEMV kernel's arguments for x (n, k) and weights, or n = 0 when it does not take them.
GemvArgs gemv_args(const Tensor& x, const std::vector<const Tensor*>& ws, const Tensor& out) {
  GemvArgs a;
  if (x.dtype() != DType::bf16 || ws.empty() || ws.size() > std::size_t(kGemvMaxWeights)) return a;
  const std::int64_t k = ws[0]->dim(1), n = x.numel() / k;
  if (n > kGemvMaxRows || k > (1 << 30)) return a;
  a.x = static_cast<const bf16*>(x.raw());
  a.ldx = k;
  a.n = static_cast<int>(n);
  a.k = static_cast<int>(k);
  for (const Tensor* w : ws) {
    if (w->dtype() != DType::bf16 || w->dim(1) != k) return GemvArgs{};
    a.w[a.count] = static_cast<const bf16*>(w->raw());
    a.m[a.count++] = static_cast<int>(w->dim(0));
  }
  a.out = out.raw();
  a.out_type = scalar_type(out);
  if (!gemv_supported(a)) return GemvArgs{};
  return a;
}

void check_projection(const Tensor& x, const std::vector<const Tensor*>& ws, const Tensor& out,
                      std::int64_t out_width, const char* op) {
  require_dtype(x, op, "x", {DType::bf16, DType::f32});
  require(!ws.empty() && ws.size() <= std::size_t(kGemvMaxWeights), op, "1 to 4 weights");
  const std::int64_t k = ws[0]->dim(1);
  for (const Tensor* w : ws) {
    require_cuda(*w, op, "w");
    require_same_dtype(x, "x", *w, "w (pass the bf16 compute copy of the weight)", op);
    require(w->ndim() == 2 && w->dim(1) == k, op, "weights must be (out, K) with one K");
  }
  require(k > 0 && x.numel() % k == 0, op, "x's element count is not a multiple of K");
  require_cuda(out, op, "out");
  require(out.dtype() == x.dtype() || out.dtype() == DType::f32, op,
          "out must have x's dtype or f32");
  require_numel(out, x.numel() / k * out_width, op, "out");
}

}  // namespace

void CudaBackend::linear_forward_concat(const Tensor& x, const std::vector<const Tensor*>& ws,
                                        Tensor& out) {
  const char* op = "linear_forward_concat";
  std::int64_t total = 0;
  for (const Tensor* w : ws) total += w->ndim() == 2 ? w->dim(0) : 0;
  check_projection(x, ws, out, total, op);
  GemvArgs a = gemv_args(x, ws, out);
  if (a.n > 0) {
    a.ldo = total;
    a.mode = GemvMode::store;
    launch_gemv(a, stream());
    return;
  }
  std::int64_t col = 0;
  for (const Tensor* w : ws) {
    void* dst = static_cast<char*>(out.raw()) + col * std::int64_t(dtype_size(out.dtype()));
    linear_->forward_into(x.raw(), w->raw(), dst, scalar_type(x), scalar_type(out),
                          x.numel() / w->dim(1), w->dim(1), w->dim(0), total, 0.f);
    col += w->dim(0);
  }
}

void CudaBackend::linear_forward_accumulate(const Tensor& x, const Tensor& w, Tensor& acc) {
  const char* op = "linear_forward_accumulate";
  check_projection(x, {&w}, acc, w.ndim() == 2 ? w.dim(0) : 0, op);
  GemvArgs a = gemv_args(x, {&w}, acc);
  if (a.n > 0) {
    a.ldo = w.dim(0);
    a.mode = GemvMode::accumulate;
    launch_gemv(a, stream());
    return;
  }
  linear_->forward_into(x.raw(), w.raw(), acc.raw(), scalar_type(x), scalar_type(acc),
                        x.numel() / w.dim(1), w.dim(1), w.dim(0), w.dim(0), 1.f);
}

void CudaBackend::swiglu_linear_forward(const Tensor& x, const Tensor& w_gate, const Tensor& w_up,
                                        Tensor& gate, Tensor& up, Tensor& out) {
  const char* op = "swiglu_linear_forward";
  check_projection(x, {&w_gate, &w_up}, out, w_gate.ndim() == 2 ? w_gate.dim(0) : 0, op);
  require(w_up.dim(0) == w_gate.dim(0), op, "w_gate and w_up must have the same shape");
  require_same_dtype(x, "x", out, "out", op);
  GemvArgs a = gemv_args(x, {&w_gate, &w_up}, out);
  if (a.n > 0) {
    a.ldo = w_gate.dim(0);
    a.mode = GemvMode::swiglu;
    launch_gemv(a, stream());
    return;
  }
  linear_forward(x, w_gate, gate);
  linear_forward(x, w_up, up);
  swiglu_forward(gate, up, out);
}

namespace {

// The norm operands of a fused RMSNorm + projection, or false when the GEMV kernel cannot take
// them (the caller then runs the unfused ops).
bool add_norm(GemvArgs& a, const Tensor& norm_w, double eps, Tensor& xn, Tensor& rstd) {
  if (a.n == 0 || !norm_w.defined()) return false;
  if (norm_w.dtype() != DType::f32 && norm_w.dtype() != DType::bf16) return false;
  a.norm_w = norm_w.raw();
  a.norm_w_f32 = norm_w.dtype() == DType::f32;
  a.norm_eps = static_cast<float>(eps);
  a.xn = static_cast<bf16*>(xn.raw());
  a.rstd = static_cast<float*>(rstd.raw());
  return gemv_supported(a);
}

void check_norm(const Tensor& x, const Tensor& norm_w, const Tensor& xn, const Tensor& rstd,
                std::int64_t k, const char* op) {
  require_cuda(norm_w, op, "norm_w");
  require_vector(norm_w, k, op, "norm_w");
  require_cuda(xn, op, "xn");
  require_same_dtype(x, "x", xn, "xn", op);
  require_numel(xn, x.numel(), op, "xn");
  require_dtype(rstd, op, "rstd", {DType::f32});
  require_numel(rstd, x.numel() / k, op, "rstd");
}

// The operands of RoPE at positions followed by the KV pool write, for n rows: theta, positions
// and slots (one i32 each per row), and pools of qkv's dtype shaped (slots, k_width) and (slots,
// v_width).
void check_rope_kv(const char* op, const Tensor& qkv, std::int64_t n, double theta,
                   const Tensor& positions, const Tensor& slots, const Tensor& k_pool,
                   const Tensor& v_pool, std::int64_t k_width, std::int64_t v_width) {
  require(theta > 0, op, "theta must be positive");
  require_dtype(positions, op, "positions", {DType::i32});
  require_dtype(slots, op, "slots", {DType::i32});
  require(positions.numel() == n && slots.numel() == n, op,
          "positions and slots must have one entry per row");
  require_cuda(k_pool, op, "k_pool");
  require_cuda(v_pool, op, "v_pool");
  require_same_dtype(qkv, "qkv", k_pool, "k_pool", op);
  require_same_dtype(qkv, "qkv", v_pool, "v_pool", op);
  require(k_pool.ndim() == 2 && v_pool.ndim() == 2 && k_pool.dim(0) == v_pool.dim(0) &&
              k_pool.dim(1) == k_width && v_pool.dim(1) == v_width,
          op, "pools must be (slots, k width) and (slots, v width)");
}

}  // namespace

void CudaBackend::rmsnorm_linear_forward_concat(const Tensor& x, const Tensor& norm_w, double eps,
                                                const std::vector<const Tensor*>& ws, Tensor& xn,
                                                Tensor& rstd, Tensor& out) {
  const char* op = "rmsnorm_linear_forward_concat";
  std::int64_t total = 0;
  for (const Tensor* w : ws) total += w->ndim() == 2 ? w->dim(0) : 0;
  check_projection(x, ws, out, total, op);
  check_norm(x, norm_w, xn, rstd, ws[0]->dim(1), op);
  GemvArgs a = gemv_args(x, ws, out);
  if (add_norm(a, norm_w, eps, xn, rstd)) {
    a.ldo = total;
    a.mode = GemvMode::store;
    launch_gemv(a, stream());
    return;
  }
  Backend::rmsnorm_linear_forward_concat(x, norm_w, eps, ws, xn, rstd, out);
}

void CudaBackend::rmsnorm_swiglu_linear_forward(const Tensor& x, const Tensor& norm_w, double eps,
                                                const Tensor& w_gate, const Tensor& w_up,
                                                Tensor& xn, Tensor& rstd, Tensor& gate, Tensor& up,
                                                Tensor& out) {
  const char* op = "rmsnorm_swiglu_linear_forward";
  check_projection(x, {&w_gate, &w_up}, out, w_gate.ndim() == 2 ? w_gate.dim(0) : 0, op);
  require(w_up.dim(0) == w_gate.dim(0), op, "w_gate and w_up must have the same shape");
  require_same_dtype(x, "x", out, "out", op);
  check_norm(x, norm_w, xn, rstd, w_gate.dim(1), op);
  GemvArgs a = gemv_args(x, {&w_gate, &w_up}, out);
  a.mode = GemvMode::swiglu;
  if (add_norm(a, norm_w, eps, xn, rstd)) {
    a.ldo = w_gate.dim(0);
    launch_gemv(a, stream());
    return;
  }
  Backend::rmsnorm_swiglu_linear_forward(x, norm_w, eps, w_gate, w_up, xn, rstd, gate, up, out);
}

void CudaBackend::rmsnorm_qkv_rope_kv_write(const Tensor& x, const Tensor& norm_w, double eps,
                                            const Tensor& wq, const Tensor& wk, const Tensor& wv,
                                            Tensor& xn, Tensor& rstd, Tensor& qkv,
                                            const Tensor& positions, int head_dim, double theta,
                                            RopeStyle style, const Tensor& slots, Tensor& k_pool,
                                            Tensor& v_pool) {
  const char* op = "rmsnorm_qkv_rope_kv_write";
  const std::vector<const Tensor*> ws = {&wq, &wk, &wv};
  std::int64_t total = 0;
  for (const Tensor* w : ws) total += w->ndim() == 2 ? w->dim(0) : 0;
  check_projection(x, ws, qkv, total, op);
  check_norm(x, norm_w, xn, rstd, wq.dim(1), op);
  require(head_dim > 0 && head_dim % 2 == 0 && wq.dim(0) % head_dim == 0 &&
              wk.dim(0) % head_dim == 0 && wk.dim(0) > 0,
          op, "W_q and W_k must be whole heads of an even head_dim");
  check_rope_kv(op, qkv, x.numel() / wq.dim(1), theta, positions, slots, k_pool, v_pool, wk.dim(0),
                wv.dim(0));
  GemvArgs a = gemv_args(x, ws, qkv);
  a.mode = GemvMode::qkv_rope;
  a.ldo = total;
  a.rope.positions = static_cast<const std::int32_t*>(positions.raw());
  a.rope.slots = static_cast<const std::int32_t*>(slots.raw());
  a.rope.k_pool = static_cast<bf16*>(k_pool.raw());
  a.rope.v_pool = static_cast<bf16*>(v_pool.raw());
  a.rope.q_heads = static_cast<int>(wq.dim(0) / head_dim);
  a.rope.k_heads = static_cast<int>(wk.dim(0) / head_dim);
  a.rope.head_dim = head_dim;
  a.rope.log_theta = std::log(theta);
  a.rope.interleaved = style == RopeStyle::interleaved;
  if (qkv.dtype() == DType::bf16 && add_norm(a, norm_w, eps, xn, rstd)) {
    launch_gemv(a, stream());
    return;
  }
  Backend::rmsnorm_qkv_rope_kv_write(x, norm_w, eps, wq, wk, wv, xn, rstd, qkv, positions, head_dim,
                                     theta, style, slots, k_pool, v_pool);
}

// ---- KV pool

void CudaBackend::kv_cache_write(const Tensor& k, std::int64_t k_stride, const Tensor& v,
                                 std::int64_t v_stride, const Tensor& slots, Tensor& k_pool,
                                 Tensor& v_pool) {
  const char* op = "kv_cache_write";
  require_dtype(k_pool, op, "k_pool", {DType::bf16, DType::f32});
  require_cuda(v_pool, op, "v_pool");
  require_cuda(k, op, "k");
  require_cuda(v, op, "v");
  require_same_dtype(k_pool, "k_pool", v_pool, "v_pool", op);
  require_same_dtype(k_pool, "k_pool", k, "k", op);
  require_same_dtype(k_pool, "k_pool", v, "v", op);
  require(k_pool.ndim() == 2 && v_pool.ndim() == 2 && k_pool.dim(0) == v_pool.dim(0), op,
          "pools must be (slots, width) with the same slot count");
  require_dtype(slots, op, "slots", {DType::i32});
  const std::int64_t n = slots.numel(), kw = k_pool.dim(1), vw = v_pool.dim(1);
  require_rows(k, n, k_stride, kw, op, "k");
  require_rows(v, n, v_stride, vw, op, "v");
  launch_kv_cache_write(k.raw(), k_stride, v.raw(), v_stride,
                        static_cast<const std::int32_t*>(slots.raw()), n, kw, vw, k_pool.raw(),
                        v_pool.raw(), scalar_type(k_pool), stream());
}

void CudaBackend::kv_cache_gather(const Tensor& k_pool, const Tensor& v_pool,
                                  const Tensor& block_table, int block_size, Tensor& k, Tensor& v) {
  const char* op = "kv_cache_gather";
  require_dtype(k_pool, op, "k_pool", {DType::bf16, DType::f32});
  require_cuda(v_pool, op, "v_pool");
  require_same_dtype(k_pool, "k_pool", v_pool, "v_pool", op);
  require_cuda(k, op, "k");
  require_cuda(v, op, "v");
  require_same_dtype(k_pool, "k_pool", k, "k", op);
  require_same_dtype(k_pool, "k_pool", v, "v", op);
  require(k_pool.ndim() == 2 && v_pool.ndim() == 2 && k.ndim() == 2, op,
          "pools and k must be 2-D (rows, width)");
  require(block_size >= 1, op, "block_size must be >= 1");
  const std::int64_t n = k.dim(0), kw = k_pool.dim(1), vw = v_pool.dim(1);
  require_numel(k, n * kw, op, "k");
  require_numel(v, n * vw, op, "v");
  require_dtype(block_table, op, "block_table", {DType::i32});
  require(block_table.numel() >= (n + block_size - 1) / block_size, op,
          "block_table has fewer entries than the tokens need");
  launch_kv_cache_gather(k_pool.raw(), v_pool.raw(),
                         static_cast<const std::int32_t*>(block_table.raw()), block_size, n, kw, vw,
                         k.raw(), v.raw(), scalar_type(k_pool), stream());
}

// ---- RoPE at positions

void CudaBackend::rope_positions(Tensor& x, std::int64_t row_stride, const Tensor& positions,
                                 int heads, int head_dim, double theta, RopeStyle style) {
  const char* op = "rope_positions";
  require_dtype(x, op, "x", {DType::bf16, DType::f32});
  require_dtype(positions, op, "positions", {DType::i32});
  require(heads >= 0 && head_dim > 0 && head_dim % 2 == 0, op,
          "heads must be >= 0 and head_dim positive and even");
  require(theta > 0, op, "theta must be positive");
  const std::int64_t n = positions.numel();
  require_rows(x, n, row_stride, std::int64_t(heads) * head_dim, op, "x");
  launch_rope_positions(x.raw(), scalar_type(x), n, row_stride,
                        static_cast<const std::int32_t*>(positions.raw()), heads, head_dim, theta,
                        style == RopeStyle::interleaved, stream());
}

void CudaBackend::rope_kv_cache_write(Tensor& qkv, std::int64_t row_stride, const Tensor& positions,
                                      int q_heads, int k_heads, int head_dim, double theta,
                                      RopeStyle style, const Tensor& slots, Tensor& k_pool,
                                      Tensor& v_pool) {
  const char* op = "rope_kv_cache_write";
  require_dtype(qkv, op, "qkv", {DType::bf16, DType::f32});
  require(q_heads >= 0 && k_heads >= 1 && head_dim > 0 && head_dim % 2 == 0, op,
          "q_heads must be >= 0, k_heads >= 1 and head_dim positive and even");
  const std::int64_t n = positions.numel();
  const std::int64_t k_width = std::int64_t(k_heads) * head_dim;
  const std::int64_t v_width = row_stride - std::int64_t(q_heads) * head_dim - k_width;
  require(v_width >= 1, op, "row_stride leaves no v block after q and k");
  require_rows(qkv, n, row_stride, row_stride, op, "qkv");
  check_rope_kv(op, qkv, n, theta, positions, slots, k_pool, v_pool, k_width, v_width);
  launch_rope_kv_cache_write(
      qkv.raw(), scalar_type(qkv), n, row_stride, static_cast<const std::int32_t*>(positions.raw()),
      static_cast<const std::int32_t*>(slots.raw()), q_heads, k_heads, head_dim, theta,
      style == RopeStyle::interleaved, k_pool.raw(), v_pool.raw(), stream());
}

// ---- paged decode attention

std::int64_t CudaBackend::paged_attention_workspace_bytes(const PagedAttentionGeometry& g) const {
  return static_cast<std::int64_t>(::difftx::cuda::paged_attention_workspace_bytes(g, sm_count()));
}

namespace {

// The operand checks of paged decode attention; returns the workspace bytes the call needs.
std::size_t check_paged_attention(const char* op, const PagedAttentionGeometry& g, const Tensor& q,
                                  const Tensor& k_pool, const Tensor& v_pool,
                                  const Tensor& block_tables, const Tensor& context_lens,
                                  const Tensor& lambda, const Tensor& out, const Tensor& workspace,
                                  int num_sms) {
  const bool diff = g.kind == PagedAttentionKind::diff;
  DIFFTX_CHECK(g.head_dim == 64 || g.head_dim == 128,
               "cuda backend: {}: head_dim {} is not supported (64 or 128)", op, g.head_dim);
  if (diff) {
    DIFFTX_CHECK(g.q_heads % 2 == 0 && g.k_heads == 2 * g.v_heads && g.v_heads > 0 &&
                     (g.q_heads / 2) % g.v_heads == 0 && g.v_head_dim == 2 * g.head_dim,
                 "cuda backend: {}: bad DIFF heads (q {}, k {}, v {}, d {}, dv {})", op, g.q_heads,
                 g.k_heads, g.v_heads, g.head_dim, g.v_head_dim);
  } else {
    DIFFTX_CHECK(g.k_heads == g.v_heads && g.k_heads > 0 && g.q_heads % g.k_heads == 0 &&
                     g.v_head_dim == g.head_dim,
                 "cuda backend: {}: bad heads (q {}, k {}, v {}, d {}, dv {})", op, g.q_heads,
                 g.k_heads, g.v_heads, g.head_dim, g.v_head_dim);
  }
  DIFFTX_CHECK(g.batch >= 0 && g.batch <= 65535 && g.block_size >= 1 && g.max_blocks >= 1,
               "cuda backend: {}: bad geometry (B={}, block_size={}, max_blocks={})", op, g.batch,
               g.block_size, g.max_blocks);
  require_dtype(q, op, "q", {DType::bf16});
  require_rows(q, g.batch, g.q_row_stride, std::int64_t(g.q_heads) * g.head_dim, op, "q");
  require_dtype(k_pool, op, "k_pool", {DType::bf16});
  require_dtype(v_pool, op, "v_pool", {DType::bf16});
  require_numel(k_pool, g.num_slots * g.k_heads * g.head_dim, op, "k_pool");
  require_numel(v_pool, g.num_slots * g.v_heads * g.v_head_dim, op, "v_pool");
  require(aligned16(k_pool.raw()) && aligned16(v_pool.raw()), op, "pools must be 16-byte aligned");
  require_i32(block_tables, std::int64_t(g.batch) * g.max_blocks, op, "block_tables");
  require_i32(context_lens, g.batch, op, "context_lens");
  require_dtype(out, op, "out", {DType::bf16});
  require_numel(out, std::int64_t(g.batch) * g.out_heads() * g.v_head_dim, op, "out");
  if (diff) {
    require_dtype(lambda, op, "lambda", {DType::f32});
    require_numel(lambda, 1, op, "lambda");
  }
  const std::size_t need = ::difftx::cuda::paged_attention_workspace_bytes(g, num_sms);
  if (need > 0) {
    require_cuda(workspace, op, "workspace");
    require(workspace.nbytes() >= need, op,
            "workspace is smaller than paged_attention_workspace_bytes()");
  }
  return need;
}

void launch_paged(const PagedAttentionGeometry& g, const Tensor& q, const Tensor& k_pool,
                  const Tensor& v_pool, const Tensor& block_tables, const Tensor& context_lens,
                  const Tensor& lambda, Tensor& out, const PagedHeadNorm* norm, Tensor& workspace,
                  std::size_t need, int num_sms, cudaStream_t stream) {
  const bool diff = g.kind == PagedAttentionKind::diff;
  launch_paged_attention_decode(
      g, static_cast<const bf16*>(q.raw()), static_cast<const bf16*>(k_pool.raw()),
      static_cast<const bf16*>(v_pool.raw()), static_cast<const std::int32_t*>(block_tables.raw()),
      static_cast<const std::int32_t*>(context_lens.raw()),
      diff ? static_cast<const float*>(lambda.raw()) : nullptr, static_cast<bf16*>(out.raw()), norm,
      need > 0 ? workspace.raw() : nullptr, need > 0 ? workspace.nbytes() : 0, num_sms, stream);
}

}  // namespace

void CudaBackend::paged_attention_decode(const PagedAttentionGeometry& g, const Tensor& q,
                                         const Tensor& k_pool, const Tensor& v_pool,
                                         const Tensor& block_tables, const Tensor& context_lens,
                                         const Tensor& lambda, Tensor& out, Tensor& workspace) {
  const std::size_t need =
      check_paged_attention("paged_attention_decode", g, q, k_pool, v_pool, block_tables,
                            context_lens, lambda, out, workspace, sm_count());
  launch_paged(g, q, k_pool, v_pool, block_tables, context_lens, lambda, out, nullptr, workspace,
               need, sm_count(), stream());
}

void CudaBackend::paged_attention_decode_head_norm(
    const PagedAttentionGeometry& g, const Tensor& q, const Tensor& k_pool, const Tensor& v_pool,
    const Tensor& block_tables, const Tensor& context_lens, const Tensor& lambda,
    const Tensor& head_norm, double eps, double scale, Tensor& /*att: unused*/, Tensor& out,
    Tensor& head_rstd, Tensor& workspace) {
  const char* op = "paged_attention_decode_head_norm";
  require(g.kind == PagedAttentionKind::diff, op, "the head norm is DIFF V1's");
  const std::size_t need = check_paged_attention(op, g, q, k_pool, v_pool, block_tables,
                                                 context_lens, lambda, out, workspace, sm_count());
  require_dtype(head_norm, op, "head_norm", {DType::f32, DType::bf16});
  require_numel(head_norm, g.v_head_dim, op, "head_norm");
  require_dtype(head_rstd, op, "head_rstd", {DType::f32});
  require_numel(head_rstd, std::int64_t(g.batch) * g.out_heads(), op, "head_rstd");
  PagedHeadNorm norm;
  norm.weight = head_norm.raw();
  norm.weight_f32 = head_norm.dtype() == DType::f32;
  norm.eps = static_cast<float>(eps);
  norm.scale = static_cast<float>(scale);
  norm.rstd = static_cast<float*>(head_rstd.raw());
  launch_paged(g, q, k_pool, v_pool, block_tables, context_lens, lambda, out, &norm, workspace,
               need, sm_count(), stream());
}

// ---- sampling

std::int64_t CudaBackend::sample_workspace_bytes(std::int64_t rows, std::int64_t vocab) const {
  return static_cast<std::int64_t>(::difftx::cuda::sample_workspace_bytes(rows, vocab));
}

void CudaBackend::sample_tokens(const Tensor& logits, const Tensor& params, int top_n,
                                Tensor& tokens, Tensor& logprobs, Tensor& top_ids,
                                Tensor& top_logprobs, Tensor& workspace) {
  const char* op = "sample_tokens";
  require_dtype(logits, op, "logits", {DType::f32, DType::bf16});
  require(logits.ndim() == 2 && logits.dim(1) > 0, op, "logits must be (rows, vocab)");
  const std::int64_t rows = logits.dim(0), vocab = logits.dim(1);
  require_i32(params, rows * kSampleParamWords, op, "params");
  require_i32(tokens, rows, op, "tokens");
  require_dtype(logprobs, op, "logprobs", {DType::f32});
  require_numel(logprobs, rows, op, "logprobs");
  require(top_n >= 0 && top_n <= 32, op, "top_n must be in [0, 32]");
  if (top_n > 0) {
    require_i32(top_ids, rows * top_n, op, "top_ids");
    require_dtype(top_logprobs, op, "top_logprobs", {DType::f32});
    require_numel(top_logprobs, rows * top_n, op, "top_logprobs");
  }
  const std::size_t need = ::difftx::cuda::sample_workspace_bytes(rows, vocab);
  require_cuda(workspace, op, "workspace");
  require(workspace.nbytes() >= need, op, "workspace is smaller than sample_workspace_bytes()");
  launch_sample_tokens(logits.raw(), scalar_type(logits), rows, vocab,
                       static_cast<const std::int32_t*>(params.raw()), top_n,
                       static_cast<std::int32_t*>(tokens.raw()),
                       static_cast<float*>(logprobs.raw()),
                       top_n > 0 ? static_cast<std::int32_t*>(top_ids.raw()) : nullptr,
                       top_n > 0 ? static_cast<float*>(top_logprobs.raw()) : nullptr,
                       workspace.raw(), workspace.nbytes(), stream());
}

// ---- capture and memory

void CudaBackend::begin_capture() {
  DIFFTX_CUDA_CHECK("begin_capture",
                    cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal));
}

std::unique_ptr<CapturedWork> CudaBackend::end_capture() {
  cudaGraph_t graph = nullptr;
  DIFFTX_CUDA_CHECK("end_capture", cudaStreamEndCapture(stream(), &graph));
  cudaGraphExec_t exec = nullptr;
  const cudaError_t status = cudaGraphInstantiate(&exec, graph, 0);
  if (status != cudaSuccess) {
    cudaGraphDestroy(graph);
    throw_cuda_error("end_capture", "cudaGraphInstantiate", status, __FILE__, __LINE__);
  }
  return std::make_unique<CudaGraph>(graph, exec, stream());
}

std::int64_t CudaBackend::free_device_memory() {
  std::size_t free = 0, total = 0;
  DIFFTX_CUDA_CHECK("free_device_memory", cudaMemGetInfo(&free, &total));
  return static_cast<std::int64_t>(free);
}

}  // namespace difftx::cuda
