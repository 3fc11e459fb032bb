// The CPU Backend: validates tensors (device, dtype, element counts) and dispatches to the
// templated kernels of cpu_ops.h in fp32 or fp64.
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
    cpu::rmsnorm_forward(p(x, "rmsnorm x"), weight.defined() ? p(weight, "rmsnorm weight") : nullptr,
                         n, c, eps, scale, p(out, "rmsnorm out"), p(rstd, "rmsnorm rstd"));
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
    T *gq1 = p(dlq1, "dlq1"), *gk1 = p(dlk1, "dlk1"), *gq2 = p(dlq2, "dlq2"), *gk2 = p(dlk2, "dlk2");
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
    DIFFTX_CHECK(bits >= 2 && bits <= 15, "attention_logits_quantize: bits must be in [2, 15], got {}",
                 bits);
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
    DIFFTX_CHECK(counts.defined() && counts.dtype() == DType::f64 && counts.device() == Device::cpu &&
                     counts.numel() == kAbsHistogramBins,
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
    DIFFTX_CHECK(n > 0 && ref_logits.numel() % n == 0, "kl_divergence_rows: {} rows of {}",
                 n, ref_logits.describe());
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

 private:
  static T* p(const Tensor& t, const char* what) {
    DIFFTX_CHECK(t.defined(), "cpu backend: {} is undefined", what);
    DIFFTX_CHECK(t.device() == Device::cpu && t.dtype() == dtype_of<T>(),
                 "cpu backend ({}): {} is {}", dtype_name(dtype_of<T>()), what, t.describe());
    return t.data<T>();
  }
  static void check_numel(const Tensor& t, i64 expected, const char* what) {
    DIFFTX_CHECK(t.defined() && t.numel() == expected, "cpu backend: {} has {} elements, expected {}",
                 what, t.defined() ? t.numel() : 0, expected);
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
