// OpProfiler: the Backend wrapper behind the training benchmarks' --profile (bench/train and
// bench/cuda). It forwards every op to the wrapped backend; while enabled it hands each call to
// an OpClock together with the op's family ("matmul fwd", "attention bwd", "rmsnorm head fwd",
// ...), so one wrapper serves the host clock of the CPU bench (HostClock, below) and the CUDA
// events of the GPU bench. While disabled it costs one extra virtual call per op.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "difftx/model/backend.h"

namespace difftx::bench {

class OpClock {
 public:
  virtual ~OpClock() = default;
  // Runs fn and attributes its time to `family` (a string literal).
  virtual void time(const char* family, const std::function<void()>& fn) = 0;
};

// Host wall clock per family, with call counts (synchronous backends: the CPU).
class HostClock final : public OpClock {
 public:
  struct Total {
    double seconds = 0;
    std::int64_t calls = 0;
  };
  void time(const char* family, const std::function<void()>& fn) override {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    Total& t = totals_[family];
    t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++t.calls;
  }
  const std::map<std::string, Total>& totals() const { return totals_; }

 private:
  std::map<std::string, Total> totals_;
};

class OpProfiler final : public Backend {
 public:
  // vocab: rows of the output head (its matmuls get their own family); d_model: width of the
  // model's norms (other widths are DIFF V1's per-head norm).
  OpProfiler(Backend& inner, OpClock& clock, std::int64_t vocab, std::int64_t d_model)
      : in_(inner), clock_(clock), vocab_(vocab), d_model_(d_model) {}

  void set_enabled(bool on) { enabled_ = on; }

  Device device() const override { return in_.device(); }
  DType act_dtype() const override { return in_.act_dtype(); }
  DType param_dtype() const override { return in_.param_dtype(); }
  const char* name() const override { return in_.name(); }
  void synchronize() override { in_.synchronize(); }

  void fill(Tensor& t, double value) override {
    timed("fill/convert", [&] { in_.fill(t, value); });
  }
  void convert(const Tensor& s, Tensor& d) override {
    timed("fill/convert", [&] { in_.convert(s, d); });
  }
  void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out) override {
    timed("embedding", [&] { in_.embedding_forward(ids, table, out); });
  }
  void embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable) override {
    timed("embedding", [&] { in_.embedding_backward(ids, dout, dtable); });
  }
  void rmsnorm_forward(const Tensor& x, const Tensor& w, double eps, double scale, Tensor& out,
                       Tensor& rstd) override {
    timed(norm_family(x, "fwd"), [&] { in_.rmsnorm_forward(x, w, eps, scale, out, rstd); });
  }
  void rmsnorm_backward(const Tensor& x, const Tensor& w, const Tensor& rstd, double scale,
                        const Tensor& dout, Tensor& dx, Tensor* dw) override {
    timed(norm_family(x, "bwd"), [&] { in_.rmsnorm_backward(x, w, rstd, scale, dout, dx, dw); });
  }
  void linear_forward(const Tensor& x, const Tensor& w, Tensor& out) override {
    timed(w.dim(0) == vocab_ ? "matmul head fwd" : "matmul fwd",
          [&] { in_.linear_forward(x, w, out); });
  }
  void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dout, Tensor& dx, Tensor& dw,
                       bool acc) override {
    timed(w.dim(0) == vocab_ ? "matmul head bwd" : "matmul bwd",
          [&] { in_.linear_backward(x, w, dout, dx, dw, acc); });
  }
  void add(const Tensor& a, const Tensor& b, Tensor& out) override {
    timed("elementwise", [&] { in_.add(a, b, out); });
  }
  void add_inplace(Tensor& acc, const Tensor& b) override {
    timed("elementwise", [&] { in_.add_inplace(acc, b); });
  }
  void rope(Tensor& x, int batch, int seq, int heads, int hd, std::int64_t stride, int off,
            double theta, RopeStyle style, bool inverse) override {
    timed("rope", [&] { in_.rope(x, batch, seq, heads, hd, stride, off, theta, style, inverse); });
  }
  void swiglu_forward(const Tensor& g, const Tensor& u, Tensor& out) override {
    timed("elementwise", [&] { in_.swiglu_forward(g, u, out); });
  }
  void swiglu_backward(const Tensor& g, const Tensor& u, const Tensor& dout, Tensor& dg,
                       Tensor& du) override {
    timed("elementwise", [&] { in_.swiglu_backward(g, u, dout, dg, du); });
  }
  void softmax_attention_forward(const AttentionGeometry& g, const Tensor& q, const Tensor& k,
                                 const Tensor& v, Tensor& out, Tensor& lse) override {
    timed("attention fwd", [&] { in_.softmax_attention_forward(g, q, k, v, out, lse); });
  }
  void diff_v2_attention_forward(const AttentionGeometry& g, const Tensor& q, const Tensor& k,
                                 const Tensor& v, const Tensor& gate, Tensor& att, Tensor& lse,
                                 Tensor& out) override {
    timed("attention fwd", [&] { in_.diff_v2_attention_forward(g, q, k, v, gate, att, lse, out); });
  }
  void softmax_attention_backward(const AttentionGeometry& g, const Tensor& q, const Tensor& k,
                                  const Tensor& v, const Tensor& out, const Tensor& lse,
                                  const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv) override {
    timed("attention bwd",
          [&] { in_.softmax_attention_backward(g, q, k, v, out, lse, dout, dq, dk, dv); });
  }
  void diff_attention_forward(const AttentionGeometry& g, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& lambda, Tensor& out, Tensor& out2,
                              Tensor& lse) override {
    timed("attention fwd", [&] { in_.diff_attention_forward(g, q, k, v, lambda, out, out2, lse); });
  }
  void diff_attention_backward(const AttentionGeometry& g, const Tensor& q, const Tensor& k,
                               const Tensor& v, const Tensor& lambda, const Tensor& out,
                               const Tensor& out2, const Tensor& lse, const Tensor& dout,
                               Tensor& dq, Tensor& dk, Tensor& dv, Tensor& dlambda) override {
    timed("attention bwd", [&] {
      in_.diff_attention_backward(g, q, k, v, lambda, out, out2, lse, dout, dq, dk, dv, dlambda);
    });
  }
  void diff_lambda_forward(const Tensor& a, const Tensor& b, const Tensor& c, const Tensor& d,
                           double init, Tensor& lambda) override {
    timed("elementwise", [&] { in_.diff_lambda_forward(a, b, c, d, init, lambda); });
  }
  void diff_lambda_backward(const Tensor& a, const Tensor& b, const Tensor& c, const Tensor& d,
                            const Tensor& dl, Tensor& da, Tensor& db, Tensor& dc,
                            Tensor& dd) override {
    timed("elementwise", [&] { in_.diff_lambda_backward(a, b, c, d, dl, da, db, dc, dd); });
  }
  void v2_combine_forward(const Tensor& a, const Tensor& g, Tensor& out) override {
    timed("elementwise", [&] { in_.v2_combine_forward(a, g, out); });
  }
  void v2_combine_backward(const Tensor& a, const Tensor& g, const Tensor& dout, Tensor& da,
                           Tensor& dg) override {
    timed("elementwise", [&] { in_.v2_combine_backward(a, g, dout, da, dg); });
  }
  void cross_entropy_forward_backward(const Tensor& logits, const Tensor& targets, float scale,
                                      Tensor& losses, Tensor& dlogits) override {
    timed("cross-entropy",
          [&] { in_.cross_entropy_forward_backward(logits, targets, scale, losses, dlogits); });
  }
  void cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& losses) override {
    timed("cross-entropy", [&] { in_.cross_entropy_forward(logits, targets, losses); });
  }
  double sum_of_squares(const Tensor& t) override {
    double r = 0;
    timed("optimizer grad-norm", [&] { r = in_.sum_of_squares(t); });
    return r;
  }
  void scale_inplace(Tensor& t, double factor) override {
    timed("optimizer clip", [&] { in_.scale_inplace(t, factor); });
  }
  void adamw_step(Tensor& p, const Tensor& g, Tensor& m, Tensor& v, double lr, double b1, double b2,
                  double eps, double wd, int step) override {
    timed("optimizer adamw", [&] { in_.adamw_step(p, g, m, v, lr, b1, b2, eps, wd, step); });
  }
  // evaluation probe ops (not used in training; forwarded untimed for completeness)
  void attention_scores(const AttentionGeometry& g, ProbeCombine c, const Tensor& q,
                        const Tensor& k, Tensor& scores) override {
    in_.attention_scores(g, c, q, k, scores);
  }
  void attention_logits_quantize(const AttentionGeometry& g, int bits, bool per_head,
                                 Tensor& scores) override {
    in_.attention_logits_quantize(g, bits, per_head, scores);
  }
  void attention_softmax(const AttentionGeometry& g, const Tensor& scores, Tensor& probs) override {
    in_.attention_softmax(g, scores, probs);
  }
  void attention_probs_value(const AttentionGeometry& g, ProbeCombine c, const Tensor& probs,
                             const Tensor& v, const Tensor& lambda, const Tensor& gate,
                             Tensor& out) override {
    in_.attention_probs_value(g, c, probs, v, lambda, gate, out);
  }
  void abs_histogram(const Tensor& x, const AttentionGeometry* g, Tensor& counts) override {
    in_.abs_histogram(x, g, counts);
  }
  std::int64_t abs_select_at_least(const Tensor& x, const AttentionGeometry* g, double threshold,
                                   Tensor& out) override {
    return in_.abs_select_at_least(x, g, threshold, out);
  }
  void kl_divergence_rows(const Tensor& ref, const Tensor& logits, Tensor& out) override {
    in_.kl_divergence_rows(ref, logits, out);
  }

  // The inference engine's ops (not part of a training step): forwarded untimed.
  void kv_cache_write(const Tensor& k, std::int64_t k_stride, const Tensor& v,
                      std::int64_t v_stride, const Tensor& slots, Tensor& k_pool,
                      Tensor& v_pool) override {
    in_.kv_cache_write(k, k_stride, v, v_stride, slots, k_pool, v_pool);
  }
  void kv_cache_gather(const Tensor& k_pool, const Tensor& v_pool, const Tensor& block_table,
                       int block_size, Tensor& k, Tensor& v) override {
    in_.kv_cache_gather(k_pool, v_pool, block_table, block_size, k, v);
  }
  void linear_forward_concat(const Tensor& x, const std::vector<const Tensor*>& ws,
                             Tensor& out) override {
    in_.linear_forward_concat(x, ws, out);
  }
  void linear_forward_accumulate(const Tensor& x, const Tensor& w, Tensor& acc) override {
    in_.linear_forward_accumulate(x, w, acc);
  }
  void swiglu_linear_forward(const Tensor& x, const Tensor& w_gate, const Tensor& w_up,
                             Tensor& gate, Tensor& up, Tensor& out) override {
    in_.swiglu_linear_forward(x, w_gate, w_up, gate, up, out);
  }
  void rmsnorm_linear_forward_concat(const Tensor& x, const Tensor& norm_w, double eps,
                                     const std::vector<const Tensor*>& ws, Tensor& xn, Tensor& rstd,
                                     Tensor& out) override {
    in_.rmsnorm_linear_forward_concat(x, norm_w, eps, ws, xn, rstd, out);
  }
  void rmsnorm_swiglu_linear_forward(const Tensor& x, const Tensor& norm_w, double eps,
                                     const Tensor& w_gate, const Tensor& w_up, Tensor& xn,
                                     Tensor& rstd, Tensor& gate, Tensor& up, Tensor& out) override {
    in_.rmsnorm_swiglu_linear_forward(x, norm_w, eps, w_gate, w_up, xn, rstd, gate, up, out);
  }
  void rope_positions(Tensor& x, std::int64_t row_stride, const Tensor& positions, int heads,
                      int head_dim, double theta, RopeStyle style) override {
    in_.rope_positions(x, row_stride, positions, heads, head_dim, theta, style);
  }
  void rmsnorm_qkv_rope_kv_write(const Tensor& x, const Tensor& norm_w, double eps,
                                 const Tensor& wq, const Tensor& wk, const Tensor& wv, Tensor& xn,
                                 Tensor& rstd, Tensor& qkv, const Tensor& positions, int head_dim,
                                 double theta, RopeStyle style, const Tensor& slots, Tensor& k_pool,
                                 Tensor& v_pool) override {
    in_.rmsnorm_qkv_rope_kv_write(x, norm_w, eps, wq, wk, wv, xn, rstd, qkv, positions, head_dim,
                                  theta, style, slots, k_pool, v_pool);
  }
  void rope_kv_cache_write(Tensor& qkv, std::int64_t row_stride, const Tensor& positions,
                           int q_heads, int k_heads, int head_dim, double theta, RopeStyle style,
                           const Tensor& slots, Tensor& k_pool, Tensor& v_pool) override {
    in_.rope_kv_cache_write(qkv, row_stride, positions, q_heads, k_heads, head_dim, theta, style,
                            slots, k_pool, v_pool);
  }
  std::int64_t paged_attention_workspace_bytes(const PagedAttentionGeometry& g) const override {
    return in_.paged_attention_workspace_bytes(g);
  }
  void paged_attention_decode(const PagedAttentionGeometry& g, const Tensor& q,
                              const Tensor& k_pool, const Tensor& v_pool,
                              const Tensor& block_tables, const Tensor& context_lens,
                              const Tensor& lambda, Tensor& out, Tensor& workspace) override {
    in_.paged_attention_decode(g, q, k_pool, v_pool, block_tables, context_lens, lambda, out,
                               workspace);
  }
  void paged_attention_decode_head_norm(const PagedAttentionGeometry& g, const Tensor& q,
                                        const Tensor& k_pool, const Tensor& v_pool,
                                        const Tensor& block_tables, const Tensor& context_lens,
                                        const Tensor& lambda, const Tensor& head_norm, double eps,
                                        double scale, Tensor& att, Tensor& out, Tensor& head_rstd,
                                        Tensor& workspace) override {
    in_.paged_attention_decode_head_norm(g, q, k_pool, v_pool, block_tables, context_lens, lambda,
                                         head_norm, eps, scale, att, out, head_rstd, workspace);
  }
  std::int64_t sample_workspace_bytes(std::int64_t rows, std::int64_t vocab) const override {
    return in_.sample_workspace_bytes(rows, vocab);
  }
  void sample_tokens(const Tensor& logits, const Tensor& params, int top_n, Tensor& tokens,
                     Tensor& logprobs, Tensor& top_ids, Tensor& top_logprobs,
                     Tensor& workspace) override {
    in_.sample_tokens(logits, params, top_n, tokens, logprobs, top_ids, top_logprobs, workspace);
  }

 private:
  const char* norm_family(const Tensor& x, const char* dir) const {
    const bool head = x.dim(x.ndim() - 1) != d_model_;
    if (dir[0] == 'f') return head ? "rmsnorm head fwd" : "rmsnorm fwd";
    return head ? "rmsnorm head bwd" : "rmsnorm bwd";
  }
  template <typename Fn>
  void timed(const char* family, Fn&& fn) {
    if (enabled_) {
      clock_.time(family, fn);
    } else {
      fn();
    }
  }

  Backend& in_;
  OpClock& clock_;
  std::int64_t vocab_;
  std::int64_t d_model_;
  bool enabled_ = false;
};

}  // namespace difftx::bench
