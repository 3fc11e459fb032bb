// The CPU Backend: validates tensors (device, dtype, element counts) and dispatches to the
// templated kernels of cpu_ops.h in fp32 or fp64 (training ops, then the engine's inference ops).
#include "difftx/cpu/cpu_backend.h"

#include <cmath>
#include <cstring>

#include "cpu_ops.h"
#include "probe_ops.h"

namespace difftx {
namespace {

using cpu::i64;

template <typename T>
class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::cpu; }
  DType act_dtype() const override { return dtype_of<T>(); }
  DType param_dtype() const override { return dtype_of<T>(); }
  const char* name() const override { return dtype_of<T>() == DType::f32 ? "cpu-f32" : "cpu-f64"; }

  void fill(Tensor& t, double value) override {
    if (t.dtype() == DType::i32) {
      std::fill_n(t.data<std::int32_t>(), t.numel(), static_cast<std::int32_t>(value));
    } else {
      std::fill_n(p(t, "fill"), t.numel(), T(value));
    }
  }

  void convert(const Tensor& src, Tensor& dst) override {
    DIFFTX_CHECK(src.numel() == dst.numel(), "convert: {} into {}", src.describe(), dst.describe());
    dst.copy_from(src.to_dtype(dst.dtype()).reshape(dst.shape()));
  }

  void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out) override {
    const i64 e = table.dim(1);
    check_numel(out, ids.numel() * e, "embedding output");
    cpu::embedding_forward(ids.data<std::int32_t>(), ids.numel(), p(table, "embedding table"),
                           table.dim(0), e, p(out, "embedding output"));
  }
  void embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable) override {
    const i64 e = dtable.dim(1);
    check_numel(dout, ids.numel() * e, "embedding dout");
    cpu::embedding_backward(ids.data<std::int32_t>(), ids.numel(), p(dout, "embedding dout"),
                            dtable.dim(0), e, p(dtable, "embedding dtable"));
  }

  void rmsnorm_forward(const Tensor& x, const Tensor& weight, double eps, double scale, Tensor& out,
                       Tensor& rstd) override {
    const i64 c = x.dim(-1), n = x.numel() / c;
    check_numel(out, x.numel(), "rmsnorm output");
    check_numel(rstd, n, "rmsnorm rstd");
    cpu::rmsnorm_forward(p(x, "rmsnorm x"),
                         weight.defined() ? p(weight, "rmsnorm weight") : nullptr, n, c, eps, scale,
                         p(out, "rmsnorm out"), p(rstd, "rmsnorm rstd"));
  }
  void rmsnorm_backward(const Tensor& x, const Tensor& weight, const Tensor& rstd, double scale,
                        const Tensor& dout, Tensor& dx, Tensor* dweight) override {
    const i64 c = x.dim(-1), n = x.numel() / c;
    check_numel(dout, x.numel(), "rmsnorm dout");
    check_numel(dx, x.numel(), "rmsnorm dx");
    cpu::rmsnorm_backward(p(x, "x"), weight.defined() ? p(weight, "weight") : nullptr,
                          p(rstd, "rstd"), n, c, scale, p(dout, "dout"), p(dx, "dx"),
                          dweight ? p(*dweight, "dweight") : nullptr);
  }

  void linear_forward(const Tensor& x, const Tensor& w, Tensor& out) override {
    const i64 k = w.dim(1), m = w.dim(0), n = x.numel() / k;
    DIFFTX_CHECK(x.numel() == n * k, "linear: input {} does not match weight {}", x.describe(),
                 w.describe());
    check_numel(out, n * m, "linear output");
    cpu::linear_forward(p(x, "x"), p(w, "w"), n, k, m, p(out, "out"));
  }
  void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dout, Tensor& dx, Tensor& dw,
                       bool accumulate_dx) override {
    const i64 k = w.dim(1), m = w.dim(0), n = x.numel() / k;
    check_numel(dout, n * m, "linear dout");
    check_numel(dx, n * k, "linear dx");
    check_numel(dw, m * k, "linear dw");
    cpu::linear_backward(p(x, "x"), p(w, "w"), p(dout, "dout"), n, k, m, p(dx, "dx"), p(dw, "dw"),
                         accumulate_dx);
  }

  void add(const Tensor& a, const Tensor& b, Tensor& out) override {
    check_numel(b, a.numel(), "add b");
    check_numel(out, a.numel(), "add out");
    const T* pa = p(a, "a");
    const T* pb = p(b, "b");
    T* po = p(out, "out");
    const i64 n = a.numel();
    for (i64 i = 0; i < n; ++i) po[i] = pa[i] + pb[i];
  }
  void add_inplace(Tensor& acc, const Tensor& b) override {
    check_numel(b, acc.numel(), "add_inplace b");
    T* pa = p(acc, "acc");
    const T* pb = p(b, "b");
    const i64 n = acc.numel();
    for (i64 i = 0; i < n; ++i) pa[i] += pb[i];
  }

  void rope(Tensor& x, int batch, int seq, int heads, int head_dim, std::int64_t row_stride,
            int pos_offset, double theta, RopeStyle style, bool inverse) override {
    DIFFTX_CHECK(x.numel() >= i64(batch) * seq * row_stride, "rope: {} too small", x.describe());
    cpu::rope(p(x, "rope x"), batch, seq, heads, head_dim, row_stride, pos_offset, theta, style,
              inverse);
  }

  void swiglu_forward(const Tensor& gate, const Tensor& up, Tensor& out) override {
    check_numel(up, gate.numel(), "swiglu up");
    check_numel(out, gate.numel(), "swiglu out");
    cpu::swiglu_forward(p(gate, "gate"), p(up, "up"), gate.numel(), p(out, "out"));
  }
  void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, Tensor& dgate,
                       Tensor& dup) override {
    cpu::swiglu_backward(p(gate, "gate"), p(up, "up"), p(dout, "dout"), gate.numel(),
                         p(dgate, "dgate"), p(dup, "dup"));
  }

  void softmax_attention_forward(const AttentionGeometry& g, const Tensor& q, const Tensor& k,
                                 const Tensor& v, Tensor& out, Tensor& lse) override {
    check_geometry(g, false);
    cpu::softmax_attention_forward(g, p(q, "q"), p(k, "k"), p(v, "v"), p(out, "out"),
                                   p(lse, "lse"));
  }
  void softmax_attention_backward(const AttentionGeometry& g, const Tensor& q, const Tensor& k,
                                  const Tensor& v, const Tensor& out, const Tensor& lse,
                                  const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv) override {
    check_geometry(g, false);
    cpu::softmax_attention_backward(g, p(q, "q"), p(k, "k"), p(v, "v"), p(out, "out"),
                                    p(lse, "lse"), p(dout, "dout"), p(dq, "dq"), p(dk, "dk"),
                                    p(dv, "dv"));
  }

  void diff_attention_forward(const AttentionGeometry& g, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& lambda, Tensor& out, Tensor& out2,
                              Tensor& lse) override {
    check_geometry(g, true);
    cpu::diff_attention_forward(g, p(q, "q"), p(k, "k"), p(v, "v"), *p(lambda, "lambda"),
                                p(out, "out"), out2.defined() ? p(out2, "out2") : nullptr,
                                p(lse, "lse"));
  }
  void diff_attention_backward(const AttentionGeometry& g, const Tensor& q, const Tensor& k,
                               const Tensor& v, const Tensor& lambda, const Tensor& out,
                               const Tensor& out2, const Tensor& lse, const Tensor& dout,
                               Tensor& dq, Tensor& dk, Tensor& dv, Tensor& dlambda) override {
    check_geometry(g, true);
    cpu::diff_attention_backward(g, p(q, "q"), p(k, "k"), p(v, "v"), *p(lambda, "lambda"),
                                 p(out, "out"), p(out2, "out2"), p(lse, "lse"), p(dout, "dout"),
                                 p(dq, "dq"), p(dk, "dk"), p(dv, "dv"), p(dlambda, "dlambda"));
  }

  void diff_lambda_forward(const Tensor& lq1, const Tensor& lk1, const Tensor& lq2,
                           const Tensor& lk2, double lambda_init, Tensor& lambda) override {
    const int d = static_cast<int>(lq1.numel());
    double e1 = std::exp(cpu::dot(p(lq1, "lq1"), p(lk1, "lk1"), d));
    double e2 = std::exp(cpu::dot(p(lq2, "lq2"), p(lk2, "lk2"), d));
    *p(lambda, "lambda") = T(e1 - e2 + lambda_init);
  }
  void diff_lambda_backward(const Tensor& lq1, const Tensor& lk1, const Tensor& lq2,
                            const Tensor& lk2, const Tensor& dlambda, Tensor& dlq1, Tensor& dlk1,
                            Tensor& dlq2, Tensor& dlk2) override {
    const int d = static_cast<int>(lq1.numel());
    const T *q1 = p(lq1, "lq1"), *k1 = p(lk1, "lk1"), *q2 = p(lq2, "lq2"), *k2 = p(lk2, "lk2");
    const double g = double(*p(dlambda, "dlambda"));
    const double e1 = std::exp(cpu::dot(q1, k1, d)), e2 = std::exp(cpu::dot(q2, k2, d));
    T *gq1 = p(dlq1, "dlq1"), *gk1 = p(dlk1, "dlk1"), *gq2 = p(dlq2, "dlq2"),
      *gk2 = p(dlk2, "dlk2");
    for (int c = 0; c < d; ++c) {
      gq1[c] += T(g * e1 * double(k1[c]));
      gk1[c] += T(g * e1 * double(q1[c]));
      gq2[c] += T(-g * e2 * double(k2[c]));
      gk2[c] += T(-g * e2 * double(q2[c]));
    }
  }

  void v2_combine_forward(const Tensor& a, const Tensor& gate_logits, Tensor& out) override {
    const int h = static_cast<int>(gate_logits.dim(-1));
    const i64 n = gate_logits.numel() / h;
    const int d = static_cast<int>(a.numel() / (n * 2 * h));
    check_numel(out, n * h * d, "v2 combine out");
    cpu::v2_combine_forward(p(a, "a"), p(gate_logits, "gate"), n, h, d, p(out, "out"));
  }
  void v2_combine_backward(const Tensor& a, const Tensor& gate_logits, const Tensor& dout,
                           Tensor& da, Tensor& dgate_logits) override {
    const int h = static_cast<int>(gate_logits.dim(-1));
    const i64 n = gate_logits.numel() / h;
    const int d = static_cast<int>(a.numel() / (n * 2 * h));
    cpu::v2_combine_backward(p(a, "a"), p(gate_logits, "gate"), p(dout, "dout"), n, h, d,
                             p(da, "da"), p(dgate_logits, "dgate"));
  }

  void cross_entropy_forward_backward(const Tensor& logits, const Tensor& targets, float grad_scale,
                                      Tensor& losses, Tensor& dlogits) override {
    const i64 n = targets.numel(), vocab = logits.numel() / n;
    check_numel(losses, n, "losses");
    check_numel(dlogits, logits.numel(), "dlogits");
    cpu::cross_entropy(p(logits, "logits"), targets.data<std::int32_t>(), n, vocab, grad_scale,
                       p(losses, "losses"), p(dlogits, "dlogits"));
  }
  void cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& losses) override {
    const i64 n = targets.numel(), vocab = logits.numel() / n;
    check_numel(losses, n, "losses");
    cpu::cross_entropy<T>(p(logits, "logits"), targets.data<std::int32_t>(), n, vocab, 0.0,
                          p(losses, "losses"), nullptr);
  }

  // ---- evaluation probes (probe_ops.h)
  void attention_scores(const AttentionGeometry& g, ProbeCombine combine, const Tensor& q,
                        const Tensor& k, Tensor& scores) override {
    check_probe_geometry(g, combine);
    check_numel(scores, probe_score_numel(g), "attention_scores scores");
    cpu::attention_scores(g, combine, p(q, "q"), p(k, "k"), p(scores, "scores"));
  }
  void attention_logits_quantize(const AttentionGeometry& g, int bits, bool per_head,
                                 Tensor& scores) override {
    DIFFTX_CHECK(bits >= 2 && bits <= 15,
                 "attention_logits_quantize: bits must be in [2, 15], got {}", bits);
    check_numel(scores, probe_score_numel(g), "attention_logits_quantize scores");
    cpu::attention_logits_quantize(g, bits, per_head, p(scores, "scores"));
  }
  void attention_softmax(const AttentionGeometry& g, const Tensor& scores, Tensor& probs) override {
    check_numel(scores, probe_score_numel(g), "attention_softmax scores");
    check_numel(probs, probe_score_numel(g), "attention_softmax probs");
    cpu::attention_softmax(g, p(scores, "scores"), p(probs, "probs"));
  }
  void attention_probs_value(const AttentionGeometry& g, ProbeCombine combine, const Tensor& probs,
                             const Tensor& v, const Tensor& lambda, const Tensor& gate_logits,
                             Tensor& out) override {
    check_probe_geometry(g, combine);
    check_numel(probs, probe_score_numel(g), "attention_probs_value probs");
    const int heads = probe_out_heads(g, combine);
    check_numel(out, i64(g.batch) * g.q_len * heads * g.v_head_dim, "attention_probs_value out");
    const double lam = combine == ProbeCombine::diff_v1 ? double(*p(lambda, "lambda")) : 0.0;
    const T* gate = nullptr;
    if (combine == ProbeCombine::diff_v2) {
      check_numel(gate_logits, i64(g.batch) * g.q_len * heads, "attention_probs_value gate_logits");
      gate = p(gate_logits, "gate_logits");
    }
    cpu::attention_probs_value(g, combine, p(probs, "probs"), p(v, "v"), lam, gate, p(out, "out"));
  }
  void abs_histogram(const Tensor& x, const AttentionGeometry* scores, Tensor& counts) override {
    DIFFTX_CHECK(counts.defined() && counts.dtype() == DType::f64 &&
                     counts.device() == Device::cpu && counts.numel() == kAbsHistogramBins,
                 "abs_histogram: counts must be f64[{}] on the cpu, got {}", kAbsHistogramBins,
                 counts.defined() ? counts.describe() : "nothing");
    if (scores) check_numel(x, probe_score_numel(*scores), "abs_histogram scores");
    if (x.dtype() == DType::f64) {
      cpu::abs_histogram(x.data<double>(), x.numel(), scores, counts.data<double>());
    } else {
      cpu::abs_histogram(x.data<float>(), x.numel(), scores, counts.data<double>());
    }
  }
  std::int64_t abs_select_at_least(const Tensor& x, const AttentionGeometry* scores,
                                   double threshold, Tensor& out) override {
    DIFFTX_CHECK(out.defined() && out.dtype() == DType::f32 && out.device() == Device::cpu,
                 "abs_select_at_least: out must be f32 on the cpu, got {}",
                 out.defined() ? out.describe() : "nothing");
    if (scores) check_numel(x, probe_score_numel(*scores), "abs_select_at_least scores");
    if (x.dtype() == DType::f64) {
      return cpu::abs_select_at_least(x.data<double>(), x.numel(), scores, threshold,
                                      out.data<float>(), out.numel());
    }
    return cpu::abs_select_at_least(x.data<float>(), x.numel(), scores, threshold,
                                    out.data<float>(), out.numel());
  }
  void kl_divergence_rows(const Tensor& ref_logits, const Tensor& logits, Tensor& out) override {
    const i64 n = out.numel();
    DIFFTX_CHECK(n > 0 && ref_logits.numel() % n == 0, "kl_divergence_rows: {} rows of {}", n,
                 ref_logits.describe());
    check_numel(logits, ref_logits.numel(), "kl_divergence_rows logits");
    cpu::kl_divergence_rows(p(ref_logits, "ref_logits"), p(logits, "logits"), n,
                            ref_logits.numel() / n, p(out, "out"));
  }

  double sum_of_squares(const Tensor& t) override {
    const T* x = p(t, "sum_of_squares");
    double s = 0;
    const i64 n = t.numel();
    for (i64 i = 0; i < n; ++i) s += double(x[i]) * double(x[i]);
    return s;
  }
  void scale_inplace(Tensor& t, double factor) override {
    T* x = p(t, "scale");
    const i64 n = t.numel();
    for (i64 i = 0; i < n; ++i) x[i] = T(double(x[i]) * factor);
  }
  void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr, double beta1,
                  double beta2, double eps, double weight_decay, int step) override {
    check_numel(grad, param.numel(), "adamw grad");
    check_numel(m, param.numel(), "adamw m");
    check_numel(v, param.numel(), "adamw v");
    cpu::adamw_step(p(param, "param"), p(grad, "grad"), p(m, "m"), p(v, "v"), param.numel(), lr,
                    beta1, beta2, eps, weight_decay, step);
  }

  // ---- inference ops (engine)

  void kv_cache_write(const Tensor& k, std::int64_t k_stride, const Tensor& v,
                      std::int64_t v_stride, const Tensor& slots, Tensor& k_pool,
                      Tensor& v_pool) override {
    const i64 n = slots.numel(), kw = k_pool.dim(-1), vw = v_pool.dim(-1);
    DIFFTX_CHECK(k_stride >= kw && v_stride >= vw,
                 "kv_cache_write: row strides {}/{} below widths {}/{}", k_stride, v_stride, kw,
                 vw);
    DIFFTX_CHECK(
        n == 0 || (k.numel() >= (n - 1) * k_stride + kw && v.numel() >= (n - 1) * v_stride + vw),
        "kv_cache_write: k {} / v {} too small for {} rows", k.describe(), v.describe(), n);
    const std::int32_t* s = ids(slots, "kv_cache_write slots");
    const i64 pool_rows = k_pool.dim(0);
    DIFFTX_CHECK(v_pool.dim(0) == pool_rows, "kv_cache_write: pools {} and {} differ in rows",
                 k_pool.describe(), v_pool.describe());
    for (i64 i = 0; i < n; ++i) {
      DIFFTX_CHECK(s[i] < pool_rows, "kv_cache_write: slot {} outside the pool of {} rows", s[i],
                   pool_rows);
    }
    cpu::kv_cache_write(p(k, "k"), k_stride, p(v, "v"), v_stride, s, n, kw, vw, p(k_pool, "k_pool"),
                        p(v_pool, "v_pool"));
  }
  void kv_cache_gather(const Tensor& k_pool, const Tensor& v_pool, const Tensor& block_table,
                       int block_size, Tensor& k, Tensor& v) override {
    DIFFTX_CHECK(k.ndim() == 2 && block_size >= 1, "kv_cache_gather: k {} must be (tokens, width)",
                 k.describe());
    const i64 n = k.dim(0), kw = k_pool.dim(-1), vw = v_pool.dim(-1);
    check_numel(k, n * kw, "kv_cache_gather k");
    check_numel(v, n * vw, "kv_cache_gather v");
    const i64 blocks = (n + block_size - 1) / block_size;
    DIFFTX_CHECK(block_table.numel() >= blocks,
                 "kv_cache_gather: a table of {} blocks for {} tokens", block_table.numel(), n);
    const std::int32_t* table = ids(block_table, "kv_cache_gather block_table");
    for (i64 b = 0; b < blocks; ++b) {
      DIFFTX_CHECK(
          table[b] >= 0 && i64(table[b] + 1) * block_size <= std::min(k_pool.dim(0), v_pool.dim(0)),
          "kv_cache_gather: block {} outside the pool", table[b]);
    }
    cpu::kv_cache_gather(p(k_pool, "k_pool"), p(v_pool, "v_pool"), table, block_size, n, kw, vw,
                         p(k, "k"), p(v, "v"));
  }

  void linear_forward_concat(const Tensor& x, const std::vector<const Tensor*>& ws,
                             Tensor& out) override {
    DIFFTX_CHECK(!ws.empty() && ws.size() <= 4, "linear_forward_concat: {} weights (1 to 4)",
                 ws.size());
    const i64 k = ws[0]->dim(1), n = x.numel() / k;
    i64 total = 0;
    for (const Tensor* w : ws) {
      DIFFTX_CHECK(w->ndim() == 2 && w->dim(1) == k, "linear_forward_concat: weight {} for K = {}",
                   w->describe(), k);
      total += w->dim(0);
    }
    DIFFTX_CHECK(x.numel() == n * k, "linear_forward_concat: input {} for K = {}", x.describe(), k);
    check_numel(out, n * total, "linear_forward_concat out");
    T* po = p(out, "out");
    i64 col = 0;
    for (const Tensor* w : ws) {
      const i64 m = w->dim(0);
      cpu::linear_forward_strided(p(x, "x"), p(*w, "w"), n, k, m, po + col, total, false);
      col += m;
    }
  }
  void linear_forward_accumulate(const Tensor& x, const Tensor& w, Tensor& acc) override {
    const i64 k = w.dim(1), m = w.dim(0), n = x.numel() / k;
    DIFFTX_CHECK(x.numel() == n * k, "linear_forward_accumulate: input {} does not match weight {}",
                 x.describe(), w.describe());
    check_numel(acc, n * m, "linear_forward_accumulate acc");
    cpu::linear_forward_strided(p(x, "x"), p(w, "w"), n, k, m, p(acc, "acc"), m, true);
  }
  void swiglu_linear_forward(const Tensor& x, const Tensor& w_gate, const Tensor& w_up,
                             Tensor& gate, Tensor& up, Tensor& out) override {
    linear_forward(x, w_gate, gate);
    linear_forward(x, w_up, up);
    swiglu_forward(gate, up, out);
  }

  void rope_positions(Tensor& x, std::int64_t row_stride, const Tensor& positions, int heads,
                      int head_dim, double theta, RopeStyle style) override {
    const i64 n = positions.numel();
    DIFFTX_CHECK(row_stride >= i64(heads) * head_dim && head_dim % 2 == 0,
                 "rope_positions: row stride {} for {} heads of {}", row_stride, heads, head_dim);
    DIFFTX_CHECK(n == 0 || x.numel() >= (n - 1) * row_stride + i64(heads) * head_dim,
                 "rope_positions: {} too small for {} rows", x.describe(), n);
    cpu::rope_positions(p(x, "rope x"), n, row_stride, ids(positions, "rope positions"), heads,
                        head_dim, theta, style);
  }

  std::int64_t paged_attention_workspace_bytes(const PagedAttentionGeometry&) const override {
    return 0;
  }
  void paged_attention_decode(const PagedAttentionGeometry& g, const Tensor& q,
                              const Tensor& k_pool, const Tensor& v_pool,
                              const Tensor& block_tables, const Tensor& context_lens,
                              const Tensor& lambda, Tensor& out, Tensor&) override {
    check_paged(g, q, k_pool, v_pool, block_tables, context_lens, out);
    const bool diff = g.kind == PagedAttentionKind::diff;
    DIFFTX_CHECK(!diff || lambda.defined(), "paged_attention_decode: DIFF V1 needs lambda");
    cpu::paged_attention_decode(g, p(q, "q"), p(k_pool, "k_pool"), p(v_pool, "v_pool"),
                                ids(block_tables, "block_tables"),
                                ids(context_lens, "context_lens"),
                                diff ? double(*p(lambda, "lambda")) : 0.0, p(out, "out"));
  }

  std::int64_t sample_workspace_bytes(std::int64_t, std::int64_t) const override { return 0; }
  void sample_tokens(const Tensor& logits, const Tensor& params, int top_n, Tensor& tokens,
                     Tensor& logprobs, Tensor& top_ids, Tensor& top_logprobs, Tensor&) override {
    DIFFTX_CHECK(logits.ndim() == 2, "sample_tokens: logits must be (rows, vocab), got {}",
                 logits.describe());
    const i64 rows = logits.dim(0), vocab = logits.dim(1);
    check_numel(params, rows * kSampleParamWords, "sample_tokens params");
    check_numel(tokens, rows, "sample_tokens tokens");
    check_numel(logprobs, rows, "sample_tokens logprobs");
    DIFFTX_CHECK(top_n >= 0, "sample_tokens: top_n {} is negative", top_n);
    if (top_n > 0) {
      check_numel(top_ids, rows * top_n, "sample_tokens top_ids");
      check_numel(top_logprobs, rows * top_n, "sample_tokens top_logprobs");
    }
    cpu::sample_tokens(p(logits, "logits"), rows, vocab, ids(params, "sample params"), top_n,
                       ids(tokens, "sampled tokens"), f32(logprobs, "logprobs"),
                       top_n > 0 ? ids(top_ids, "top_ids") : nullptr,
                       top_n > 0 ? f32(top_logprobs, "top_logprobs") : nullptr);
  }

 private:
  static float* f32(const Tensor& t, const char* what) {
    DIFFTX_CHECK(t.defined() && t.device() == Device::cpu && t.dtype() == DType::f32,
                 "cpu backend: {} must be f32 on the cpu, got {}", what,
                 t.defined() ? t.describe() : "nothing");
    return t.data<float>();
  }
  static std::int32_t* ids(const Tensor& t, const char* what) {
    DIFFTX_CHECK(t.defined() && t.device() == Device::cpu && t.dtype() == DType::i32,
                 "cpu backend: {} must be i32 on the cpu, got {}", what,
                 t.defined() ? t.describe() : "nothing");
    return t.data<std::int32_t>();
  }
  static void check_paged(const PagedAttentionGeometry& g, const Tensor& q, const Tensor& k_pool,
                          const Tensor& v_pool, const Tensor& block_tables,
                          const Tensor& context_lens, const Tensor& out) {
    const bool diff = g.kind == PagedAttentionKind::diff;
    DIFFTX_CHECK(g.batch >= 0 && g.head_dim > 0 && g.block_size > 0 && g.max_blocks > 0 &&
                     g.q_heads > 0 && g.k_heads > 0 && g.v_heads > 0,
                 "paged_attention_decode: bad geometry (B={}, d={}, block={}, blocks={})", g.batch,
                 g.head_dim, g.block_size, g.max_blocks);
    if (diff) {
      DIFFTX_CHECK(g.q_heads % 2 == 0 && g.k_heads == 2 * g.v_heads &&
                       (g.q_heads / 2) % g.v_heads == 0 && g.v_head_dim == 2 * g.head_dim,
                   "paged_attention_decode: bad DIFF heads (q {}, k {}, v {}, d {}, dv {})",
                   g.q_heads, g.k_heads, g.v_heads, g.head_dim, g.v_head_dim);
    } else {
      DIFFTX_CHECK(
          g.k_heads == g.v_heads && g.q_heads % g.k_heads == 0 && g.v_head_dim == g.head_dim,
          "paged_attention_decode: bad heads (q {}, k {}, v {})", g.q_heads, g.k_heads, g.v_heads);
    }
    DIFFTX_CHECK(g.q_row_stride >= i64(g.q_heads) * g.head_dim &&
                     (g.batch == 0 ||
                      q.numel() >= (g.batch - 1) * g.q_row_stride + i64(g.q_heads) * g.head_dim),
                 "paged_attention_decode: q {} does not hold {} rows of stride {}", q.describe(),
                 g.batch, g.q_row_stride);
    check_numel(k_pool, g.num_slots * g.k_heads * g.head_dim, "paged k_pool");
    check_numel(v_pool, g.num_slots * g.v_heads * g.v_head_dim, "paged v_pool");
    check_numel(block_tables, i64(g.batch) * g.max_blocks, "paged block_tables");
    check_numel(context_lens, g.batch, "paged context_lens");
    check_numel(out, i64(g.batch) * g.out_heads() * g.v_head_dim, "paged out");
    const std::int32_t* lens = ids(context_lens, "context_lens");
    const std::int32_t* tables = ids(block_tables, "block_tables");
    for (int b = 0; b < g.batch; ++b) {
      DIFFTX_CHECK(lens[b] >= 0 && lens[b] <= g.max_blocks * g.block_size,
                   "paged_attention_decode: context length {} of row {} outside [0, {}]", lens[b],
                   b, g.max_blocks * g.block_size);
      for (int t = 0; t < lens[b]; t += g.block_size) {
        const std::int32_t block = tables[i64(b) * g.max_blocks + t / g.block_size];
        DIFFTX_CHECK(block >= 0 && i64(block + 1) * g.block_size <= g.num_slots,
                     "paged_attention_decode: block {} of row {} outside the pool", block, b);
      }
    }
  }
  static T* p(const Tensor& t, const char* what) {
    DIFFTX_CHECK(t.defined(), "cpu backend: {} is undefined", what);
    DIFFTX_CHECK(t.device() == Device::cpu && t.dtype() == dtype_of<T>(),
                 "cpu backend ({}): {} is {}", dtype_name(dtype_of<T>()), what, t.describe());
    return t.data<T>();
  }
  static void check_numel(const Tensor& t, i64 expected, const char* what) {
    DIFFTX_CHECK(t.defined() && t.numel() == expected,
                 "cpu backend: {} has {} elements, expected {}", what, t.defined() ? t.numel() : 0,
                 expected);
  }
  static i64 probe_score_numel(const AttentionGeometry& g) {
    return i64(g.batch) * g.q_heads * g.q_len * g.kv_len;
  }
  static void check_probe_geometry(const AttentionGeometry& g, ProbeCombine combine) {
    check_geometry(g, combine == ProbeCombine::diff_v1);
    if (combine == ProbeCombine::diff_v2) {
      DIFFTX_CHECK(g.q_heads % 2 == 0 && (g.q_heads / g.k_heads) % 2 == 0,
                   "diff v2 probe: a head pair must share its kv head (q {}, k {})", g.q_heads,
                   g.k_heads);
    }
  }
  static void check_geometry(const AttentionGeometry& g, bool diff) {
    DIFFTX_CHECK(g.batch > 0 && g.q_len > 0 && g.kv_len >= g.q_offset + g.q_len,
                 "attention: bad geometry (B={}, T={}, S={}, offset={})", g.batch, g.q_len,
                 g.kv_len, g.q_offset);
    if (diff) {
      DIFFTX_CHECK(g.q_heads % 2 == 0 && g.k_heads == 2 * g.v_heads &&
                       (g.q_heads / 2) % g.v_heads == 0 && g.v_head_dim == 2 * g.head_dim,
                   "diff attention: bad heads (q {}, k {}, v {}, d {}, dv {})", g.q_heads,
                   g.k_heads, g.v_heads, g.head_dim, g.v_head_dim);
    } else {
      DIFFTX_CHECK(g.k_heads == g.v_heads && g.q_heads % g.k_heads == 0,
                   "attention: bad heads (q {}, k {}, v {})", g.q_heads, g.k_heads, g.v_heads);
    }
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(DType dtype) {
  if (dtype == DType::f32) return std::make_unique<CpuBackend<float>>();
  if (dtype == DType::f64) return std::make_unique<CpuBackend<double>>();
  fail("the CPU backend runs in f32 or f64, not {}", dtype_name(dtype));
}

}  // namespace difftx
