// Backend: the op set the model is written against. The CPU backend (naive, fp32 or fp64) is
// the oracle; the CUDA backend (bf16 activations, fp32 master weights and gradients) must match
// it op by op (tests/ops). Conventions, as in llm.c:
//   - shapes are given in comments as (rows, cols) of row-major contiguous tensors;
//   - outputs of forward ops and activation gradients are overwritten (=);
//   - parameter gradients are accumulated (+=), so micro-batches add up;
//   - "act" tensors have the backend's activation dtype, parameters/gradients its param dtype;
//   - "stat" tensors (rstd, lse, lambda, losses) have the param dtype: f32 on CUDA, f32 or f64
//     on the CPU (the f64 CPU mode exists for finite-difference checks). Below, "f32" in a
//     comment means that stat dtype;
//   - linear weights use torch.nn.Linear layout (out_features, in_features): y = x W^T.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "difftx/core/paged_attention.h"
#include "difftx/core/tensor.h"
#include "difftx/model/attention_geometry.h"
#include "difftx/model/attention_probe.h"
#include "difftx/model/config.h"

namespace difftx {

// A recorded sequence of device work (a CUDA graph) that replays on the backend's stream with
// the same buffers; see Backend::begin_capture.
class CapturedWork {
 public:
  virtual ~CapturedWork() = default;
  virtual void replay() = 0;
};

// A point in a backend's queue of device work; wait() returns once everything queued before it
// has run. See Backend::mark_queue.
class QueueMark {
 public:
  virtual ~QueueMark() = default;
  virtual void wait() = 0;
};

// The mark of a backend that runs work when it is called (the CPU): always reached.
class ReachedMark final : public QueueMark {
 public:
  void wait() override {}
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual Device device() const = 0;
  virtual DType act_dtype() const = 0;    // activations
  virtual DType param_dtype() const = 0;  // master weights, gradients, optimizer state
  virtual const char* name() const = 0;

  // ---- memory helpers
  virtual void fill(Tensor& t, double value) = 0;
  // dst = src converted to dst's dtype (same shape, same device).
  virtual void convert(const Tensor& src, Tensor& dst) = 0;
  virtual void synchronize() {}
  // The queue the backend's device work runs on, for libraries that order their own work
  // against it (CUDA: its cudaStream_t, used by the NCCL collectives of src/dist). Null on the CPU.
  virtual void* native_stream() { return nullptr; }

  // ---- asynchronous transfers: what lets the engine queue a step before the previous one ends.
  // Page-locks a host tensor's memory while the handle lives, so that copy_async to or from it
  // returns at once (CUDA); null where nothing is needed (the CPU). The tensor must be a
  // Tensor::empty host allocation of at least 4096 bytes (whole pages of its own), and must
  // outlive the handle.
  virtual std::shared_ptr<void> pin_host(const Tensor& host) {
    (void)host;
    return nullptr;
  }
  // Queues dst <- src (same shape and dtype; host or device on either side) after the work
  // queued before; returns at once where the host side is pinned (pin_host). The CPU copies now;
  // CUDA copies small transfers with pinned host memory (mapped) by a kernel.
  virtual void copy_async(const Tensor& dst, const Tensor& src) {
    Tensor d = dst;
    d.copy_from(src);
  }
  // copy_async(dst, src) of i32 tensors, except that each patch's words of dst come from `from`
  // (a tensor of this backend that the work queued before may still be writing, e.g. the tokens
  // the step before samples): dst[at + j] = from[from + j] for j < count. The patches lie inside
  // dst and do not overlap. The default queues the copy and then one copy per patch; CUDA does it
  // in one kernel when src is pinned host memory (which no queued work writes) and there are at
  // most 8 patches.
  struct CopyPatch {
    std::int64_t at = 0, from = 0, count = 0;
  };
  virtual void copy_async_patched(const Tensor& dst, const Tensor& src,
                                  const std::vector<CopyPatch>& patches, const Tensor& from) {
    copy_async(dst, src);
    for (const CopyPatch& p : patches) {
      copy_async(dst.rows(p.at, p.at + p.count), from.rows(p.from, p.from + p.count));
    }
  }
  // Marks the current end of the queue of device work.
  virtual std::unique_ptr<QueueMark> mark_queue() { return std::make_unique<ReachedMark>(); }

  // ---- embedding: out (N, E) = table[ids]; dtable (V, E) += scatter of dout
  virtual void embedding_forward(const Tensor& ids /*(N) i32*/, const Tensor& table /*(V,E)*/,
                                 Tensor& out /*(N,E) act*/) = 0;
  virtual void embedding_backward(const Tensor& ids, const Tensor& dout /*(N,E) act*/,
                                  Tensor& dtable /*(V,E) param, +=*/) = 0;

  // ---- RMSNorm over the last dim C: out = scale * x / rms(x) * weight; rstd (N) kept for bwd.
  // weight may be undefined (no gain). scale is a constant (DIFF V1: 1 - lambda_init).
  virtual void rmsnorm_forward(const Tensor& x /*(N,C)*/, const Tensor& weight /*(C) or {}*/,
                               double eps, double scale, Tensor& out /*(N,C)*/,
                               Tensor& rstd /*(N) f32*/) = 0;
  virtual void rmsnorm_backward(const Tensor& x, const Tensor& weight, const Tensor& rstd,
                                double scale, const Tensor& dout, Tensor& dx /*=*/,
                                Tensor* dweight /*(C) +=, null when no gain*/) = 0;

  // ---- linear: out (N, M) = x (N, K) W^T, W (M, K). Backward: dx = dout W (=, or += when
  // accumulate_dx), dW += dout^T x. The forward's out may also have the param dtype (f32
  // logits from bf16 activations on CUDA).
  virtual void linear_forward(const Tensor& x, const Tensor& w, Tensor& out) = 0;
  virtual void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dout, Tensor& dx,
                               Tensor& dw, bool accumulate_dx) = 0;

  // ---- elementwise
  virtual void add(const Tensor& a, const Tensor& b, Tensor& out) = 0;  // out = a + b
  virtual void add_inplace(Tensor& acc, const Tensor& b) = 0;           // acc += b

  // ---- RoPE on x viewed as (B, T, H, D) with row stride `row_stride` (elements per token),
  // token t at position pos_offset + t. inverse = true applies the transpose rotation (backward).
  virtual void rope(Tensor& x, int batch, int seq, int heads, int head_dim, std::int64_t row_stride,
                    int pos_offset, double theta, RopeStyle style, bool inverse) = 0;

  // ---- SwiGLU: out = silu(gate) * up, all (N, F)
  virtual void swiglu_forward(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  virtual void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dout,
                               Tensor& dgate, Tensor& dup) = 0;

  // ---- softmax attention (baseline and V2): q (B,T,Hq,d) k (B,S,Hk,d) v (B,S,Hk,dv),
  // GQA: query head m uses kv head m / (Hq/Hk). out (B,T,Hq,dv), lse (B,Hq,T) f32 for bwd.
  virtual void softmax_attention_forward(const AttentionGeometry& g, const Tensor& q,
                                         const Tensor& k, const Tensor& v, Tensor& out,
                                         Tensor& lse) = 0;
  virtual void softmax_attention_backward(const AttentionGeometry& g, const Tensor& q,
                                          const Tensor& k, const Tensor& v, const Tensor& out,
                                          const Tensor& lse, const Tensor& dout, Tensor& dq,
                                          Tensor& dk, Tensor& dv) = 0;

  // ---- differential attention V1: q (B,T,2h,d), k (B,S,2h_kv,d), v (B,S,h_kv,2d);
  // head i uses q components 2i, 2i+1 and k components 2j, 2j+1 with j = i / n_rep.
  // out (B,T,h,2d) = (A1 - lambda A2) V_j; out2 (B,T,h,2d) = A2 V_j is kept for the backward
  // (O1 = out + lambda out2, dlambda = -sum(out2 . dout)); lse (B,2h,T) f32 holds both maps'
  // log-sum-exps (row 2i: A1 of head i, row 2i+1: A2). lambda is a (1) f32 tensor on the
  // device. dlambda (1) f32 is accumulated (+=). out2 may be undefined in inference.
  virtual void diff_attention_forward(const AttentionGeometry& g, const Tensor& q, const Tensor& k,
                                      const Tensor& v, const Tensor& lambda, Tensor& out,
                                      Tensor& out2, Tensor& lse) = 0;
  virtual void diff_attention_backward(const AttentionGeometry& g, const Tensor& q, const Tensor& k,
                                       const Tensor& v, const Tensor& lambda, const Tensor& out,
                                       const Tensor& out2, const Tensor& lse, const Tensor& dout,
                                       Tensor& dq, Tensor& dk, Tensor& dv, Tensor& dlambda) = 0;

  // ---- DIFF V1 lambda = exp(lq1.lk1) - exp(lq2.lk2) + lambda_init, all vectors (d) params.
  virtual void diff_lambda_forward(const Tensor& lq1, const Tensor& lk1, const Tensor& lq2,
                                   const Tensor& lk2, double lambda_init,
                                   Tensor& lambda /*(1) f32*/) = 0;
  virtual void diff_lambda_backward(const Tensor& lq1, const Tensor& lk1, const Tensor& lq2,
                                    const Tensor& lk2, const Tensor& dlambda /*(1) f32*/,
                                    Tensor& dlq1, Tensor& dlk1, Tensor& dlq2,
                                    Tensor& dlk2 /*+=*/) = 0;

  // ---- DIFF V2 combine: a (N, 2h, d), gate_logits (N, h): out (N, h, d) =
  // a[:,2i] - sigmoid(gate_logits[:,i]) * a[:,2i+1].
  virtual void v2_combine_forward(const Tensor& a, const Tensor& gate_logits, Tensor& out) = 0;
  virtual void v2_combine_backward(const Tensor& a, const Tensor& gate_logits, const Tensor& dout,
                                   Tensor& da, Tensor& dgate_logits) = 0;

  // ---- DIFF V2 attention forward: att (B*T, 2h, d) = softmax attention over the 2h query heads
  // (kept for the backward, which is v2_combine_backward + softmax_attention_backward), lse
  // (B, 2h, T), out (B*T, h, d) = att[:,2i] - sigmoid(gate_logits[:,i]) att[:,2i+1]. The default
  // runs the two ops; a backend with a fused kernel (CUDA on Hopper: the pair shares its K/V
  // tiles and the combine runs in the epilogue) overrides it.
  virtual void diff_v2_attention_forward(const AttentionGeometry& g, const Tensor& q,
                                         const Tensor& k, const Tensor& v,
                                         const Tensor& gate_logits, Tensor& att, Tensor& lse,
                                         Tensor& out) {
    softmax_attention_forward(g, q, k, v, att, lse);
    v2_combine_forward(att, gate_logits, out);
  }

  // ---- fused cross-entropy: logits (N, V) act, targets (N) i32 (negative = ignored).
  // Writes per-row losses (N) f32 and dlogits = (softmax - onehot) * grad_scale (same shape as
  // logits; may alias logits). Returns nothing; the caller reduces losses.
  virtual void cross_entropy_forward_backward(const Tensor& logits, const Tensor& targets,
                                              float grad_scale, Tensor& losses,
                                              Tensor& dlogits) = 0;
  // Forward only (evaluation): per-row losses.
  virtual void cross_entropy_forward(const Tensor& logits, const Tensor& targets,
                                     Tensor& losses) = 0;

  // ---- materialized attention and statistics for the evaluation probes (Model::probe_forward,
  // src/eval; see attention_probe.h). Forward only. scores and probs are (B, Hs, T, S) in the
  // stat dtype, Hs = g.q_heads score maps, S = g.kv_len; masked entries (s > q_offset + t) are
  // written as 0 and excluded from every reduction. q, k, v are laid out as for the fused ops.
  // scores = scale * q_m . k_probe_key_component(m) for every visible entry.
  virtual void attention_scores(const AttentionGeometry& g, ProbeCombine combine, const Tensor& q,
                                const Tensor& k, Tensor& scores) = 0;
  // Dynamic absmax quantization in place, bits in [2, 15]: Q = 2^(bits-1) - 1, s = absmax / Q,
  // x <- clamp(round(x / s), -Q, Q) * s (round half away from zero). The absmax runs over the
  // visible entries of one batch row (every map: per tensor) or of one (row, map) (per_head).
  // A group whose absmax is 0 stays 0.
  virtual void attention_logits_quantize(const AttentionGeometry& g, int bits, bool per_head,
                                         Tensor& scores) = 0;
  // probs = softmax over each row's visible entries (masked entries 0). probs may alias scores.
  virtual void attention_softmax(const AttentionGeometry& g, const Tensor& scores,
                                 Tensor& probs) = 0;
  // out (B*T, probe_out_heads, dv) act = probs x V with the combination (attention_probe.h):
  // lambda (1) stat for diff_v1, gate_logits (B*T, q_heads/2) act for diff_v2 (else undefined).
  virtual void attention_probs_value(const AttentionGeometry& g, ProbeCombine combine,
                                     const Tensor& probs, const Tensor& v, const Tensor& lambda,
                                     const Tensor& gate_logits, Tensor& out) = 0;
  // counts (kAbsHistogramBins) f64 = histogram of |x| over every element of x (any float dtype),
  // or, with `scores` set, over the visible entries of a (B, Hs, T, S) scores tensor of that
  // geometry.
  virtual void abs_histogram(const Tensor& x, const AttentionGeometry* scores, Tensor& counts) = 0;
  // Returns how many (visible) elements have |x| >= threshold and writes the |x| of the first
  // min(count, out.numel()) found to out (f32, in no particular order).
  virtual std::int64_t abs_select_at_least(const Tensor& x, const AttentionGeometry* scores,
                                           double threshold, Tensor& out) = 0;
  // out (N) stat = KL(softmax(ref_logits) || softmax(logits)) per row of two (N, V) act tensors.
  virtual void kl_divergence_rows(const Tensor& ref_logits, const Tensor& logits, Tensor& out) = 0;

  // ---- optimizer support (params, grads and moments all param dtype, same shape)
  virtual double sum_of_squares(const Tensor& t) = 0;  // for global grad-norm clipping
  virtual void scale_inplace(Tensor& t, double factor) = 0;
  virtual void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr,
                          double beta1, double beta2, double eps, double weight_decay,
                          int step /*1-based*/) = 0;

  // ==== inference ops (the engine: paged KV cache, batched decoding, sampling). Forward only.
  // Row strides are in elements, so q/k/v may be column blocks of one fused projection.

  // ---- KV pool write: row n of k (N rows of k_heads*d, stride k_stride) and of v (stride
  // v_stride) goes to row slots[n] of k_pool (num_slots, k_width) / v_pool (num_slots,
  // v_width); slots (N) i32 on the device; a negative slot skips the row (padding).
  virtual void kv_cache_write(const Tensor& k, std::int64_t k_stride, const Tensor& v,
                              std::int64_t v_stride, const Tensor& slots, Tensor& k_pool,
                              Tensor& v_pool) = 0;
  // ---- KV pool gather of one sequence's first N tokens, in order: token t is pool row
  // block_table[t / block_size] * block_size + t % block_size; block_table (>= ceil(N /
  // block_size)) i32 on the device. k (N, k_width), v (N, v_width) contiguous: the cache as the
  // flash attention ops take it (chunked prefill).
  virtual void kv_cache_gather(const Tensor& k_pool, const Tensor& v_pool,
                               const Tensor& block_table, int block_size, Tensor& k, Tensor& v) = 0;

  // ---- fused projections of the decode path (one pass over the input for several weights;
  // on CUDA a GEMV kernel for a few rows, cuBLASLt otherwise). Weights are compute copies.
  // out (N, sum M_i) = x (N, K) [W_0; W_1; ...]^T: the weights' outputs side by side in each row
  // (the QKV projection, plus W_lambda for DIFF V2). 1 to 4 weights.
  virtual void linear_forward_concat(const Tensor& x, const std::vector<const Tensor*>& ws,
                                     Tensor& out) = 0;
  // acc (N, M) += x (N, K) W^T: a projection added into the residual stream.
  virtual void linear_forward_accumulate(const Tensor& x, const Tensor& w, Tensor& acc) = 0;
  // out (N, F) = silu(x W_gate^T) * (x W_up^T). gate, up (N, F): scratch a backend may use (the
  // unfused path writes the two projections there).
  virtual void swiglu_linear_forward(const Tensor& x, const Tensor& w_gate, const Tensor& w_up,
                                     Tensor& gate, Tensor& up, Tensor& out) = 0;
  // The two projections that follow a residual RMSNorm (gain `norm_w`, scale 1), with the norm
  // folded in: xn (N, K) = rmsnorm(x), rstd (N) f32, then out as linear_forward_concat /
  // swiglu_linear_forward of xn. The default runs rmsnorm_forward and the projection; CUDA
  // folds the norm into the GEMV kernel for a few rows (one launch less per projection).
  virtual void rmsnorm_linear_forward_concat(const Tensor& x, const Tensor& norm_w, double eps,
                                             const std::vector<const Tensor*>& ws, Tensor& xn,
                                             Tensor& rstd, Tensor& out);
  virtual void rmsnorm_swiglu_linear_forward(const Tensor& x, const Tensor& norm_w, double eps,
                                             const Tensor& w_gate, const Tensor& w_up, Tensor& xn,
                                             Tensor& rstd, Tensor& gate, Tensor& up, Tensor& out);

  // The attention block's input in one op: xn = rmsnorm(x), qkv (N, q | k | v) = xn [W_q; W_k;
  // W_v]^T, then rope_kv_cache_write on qkv (row stride the qkv width). The default runs
  // rmsnorm_linear_forward_concat and rope_kv_cache_write; CUDA does it all in the GEMV kernel
  // for a few rows (RoPE and the pool writes in its epilogue).
  virtual void rmsnorm_qkv_rope_kv_write(const Tensor& x, const Tensor& norm_w, double eps,
                                         const Tensor& wq, const Tensor& wk, const Tensor& wv,
                                         Tensor& xn, Tensor& rstd, Tensor& qkv,
                                         const Tensor& positions, int head_dim, double theta,
                                         RopeStyle style, const Tensor& slots, Tensor& k_pool,
                                         Tensor& v_pool);

  // ---- RoPE at per-token positions: row n of x (N rows, `row_stride` elements apart) holds
  // `heads` components of head_dim, rotated by position positions[n] ((N) i32 on the device).
  virtual void rope_positions(Tensor& x, std::int64_t row_stride, const Tensor& positions,
                              int heads, int head_dim, double theta, RopeStyle style) = 0;
  // RoPE at positions on the q and k blocks of a fused projection's rows, then their k and v
  // blocks written to the KV pools: qkv (N rows, row_stride apart) = [q (q_heads*d) | k
  // (k_heads*d) | v (the rest of the row)], k_pool (num_slots, k_heads*d), v_pool (num_slots,
  // row_stride - (q_heads + k_heads)*d). The default runs rope_positions and kv_cache_write;
  // CUDA does both in one kernel.
  virtual void rope_kv_cache_write(Tensor& qkv, std::int64_t row_stride, const Tensor& positions,
                                   int q_heads, int k_heads, int head_dim, double theta,
                                   RopeStyle style, const Tensor& slots, Tensor& k_pool,
                                   Tensor& v_pool);

  // ---- paged decode attention: sequence b's query row q[b] (rows g.q_row_stride apart)
  // attends to its first context_lens[b] tokens in the pools (block_tables (B, max_blocks) i32,
  // context_lens (B) i32, both on the device; a length of 0 gives a zero output). Causality is
  // the caller's: the current token's K/V are written before the call. out (B, out_heads, dv)
  // contiguous: softmax per query component, or DIFF V1 (A1 - lambda A2) V per head with lambda
  // (1) f32 (undefined for softmax). workspace: paged_attention_workspace_bytes(g) bytes of
  // device scratch (may be undefined when that is 0) for the split-K partial results, zeroed
  // once before its first use (it holds arrival counters the op leaves at zero).
  virtual std::int64_t paged_attention_workspace_bytes(const PagedAttentionGeometry& g) const = 0;
  virtual void paged_attention_decode(const PagedAttentionGeometry& g, const Tensor& q,
                                      const Tensor& k_pool, const Tensor& v_pool,
                                      const Tensor& block_tables, const Tensor& context_lens,
                                      const Tensor& lambda, Tensor& out, Tensor& workspace) = 0;
  // DIFF V1 paged decode attention followed by its per-head RMSNorm: att (B, h, 2d) as
  // paged_attention_decode writes it (scratch a backend may leave unwritten), then out (B, h, 2d)
  // = rmsnorm_forward(att rows of 2d, head_norm, eps, scale) and head_rstd (B*h) f32. The
  // default runs the two ops; CUDA normalizes in the attention kernel's epilogue.
  virtual void paged_attention_decode_head_norm(const PagedAttentionGeometry& g, const Tensor& q,
                                                const Tensor& k_pool, const Tensor& v_pool,
                                                const Tensor& block_tables,
                                                const Tensor& context_lens, const Tensor& lambda,
                                                const Tensor& head_norm, double eps, double scale,
                                                Tensor& att, Tensor& out, Tensor& head_rstd,
                                                Tensor& workspace);

  // ---- sampling on the device: for each row r of logits (R, V) (act or param dtype) with
  // params (R, kSampleParamWords) i32 (paged_attention.h):
  //   T = 0: tokens[r] = argmax (lowest id among ties);
  //   T > 0: the kept set of the host Sampler (sampling.h): softmax(logits / T), the top_k
  //     tokens in (probability desc, id asc) order, then the shortest prefix of them (same
  //     order) whose renormalised mass reaches top_p; tokens[r] = the kept id maximising
  //     logits/T - log(-log(u_i)), u_i = sample_uniform(seed, counter, i) (Gumbel-max: one draw
  //     from the renormalised kept distribution, reproducible from seed and counter).
  //   logprobs[r] (R) = log_softmax(logits[r])[tokens[r]] (temperature 1, unfiltered);
  //   top_ids / top_logprobs (R, top_n): the row's kSampleTopN (<= top_n) largest logits (ties:
  //   lower id first) and their log-softmax; unused entries get id -1 and logprob 0.
  // logprobs and top_logprobs are f32; top_n may be 0 (then top_ids/top_logprobs are unused).
  // workspace: sample_workspace_bytes(rows, vocab) bytes of device scratch (may be undefined
  // when that is 0).
  virtual std::int64_t sample_workspace_bytes(std::int64_t rows, std::int64_t vocab) const = 0;
  virtual void sample_tokens(const Tensor& logits, const Tensor& params, int top_n, Tensor& tokens,
                             Tensor& logprobs, Tensor& top_ids, Tensor& top_logprobs,
                             Tensor& workspace) = 0;

  // ---- capture of device work (CUDA graphs): between begin_capture() and end_capture() ops
  // are recorded, not run, and must not allocate, copy to or from the host or synchronize;
  // replay() runs them again on the same buffers. Backends without it return false.
  virtual bool supports_capture() const { return false; }
  virtual void begin_capture() { fail("backend {} cannot capture device work", name()); }
  virtual std::unique_ptr<CapturedWork> end_capture() {
    fail("backend {} cannot capture device work", name());
  }
  // Free device memory in bytes, or -1 where the backend does not know (the CPU).
  virtual std::int64_t free_device_memory() { return -1; }
};

}  // namespace difftx
