// The CudaBackend class (private to src/cuda/backend): each method is the one checked entry of
// its op; it validates the tensors (device, dtype, shapes, layouts; validate.h) and calls the
// op's raw-pointer launcher (src/cuda/ops, src/cuda/attention) on the context's stream. The
// attention kernel family is chosen once, at construction. Implementations are split by op
// family across backend_*.cpp files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>

#include "../ops/linear_cublaslt.h"
#include "cuda_context.h"
#include "difftx/cuda/attention/attention.h"
#include "difftx/model/backend.h"

namespace difftx::cuda {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device_index);
  ~CudaBackend() override;

  Device device() const override { return Device::cuda; }
  DType act_dtype() const override { return DType::bf16; }
  DType param_dtype() const override { return DType::f32; }
  const char* name() const override { return "cuda-bf16"; }

  // backend_memory.cpp
  void fill(Tensor& t, double value) override;
  void convert(const Tensor& src, Tensor& dst) override;
  void synchronize() override;
  void* native_stream() override { return stream(); }
  std::shared_ptr<void> pin_host(const Tensor& host) override;
  void copy_async(const Tensor& dst, const Tensor& src) override;
  void copy_async_patched(const Tensor& dst, const Tensor& src,
                          const std::vector<CopyPatch>& patches, const Tensor& from) override;
  std::unique_ptr<QueueMark> mark_queue() override;
  void add(const Tensor& a, const Tensor& b, Tensor& out) override;
  void add_inplace(Tensor& acc, const Tensor& b) override;

  // backend_layers.cpp
  void embedding_forward(const Tensor& ids, const Tensor& table, Tensor& out) override;
  void embedding_backward(const Tensor& ids, const Tensor& dout, Tensor& dtable) override;
  void rmsnorm_forward(const Tensor& x, const Tensor& weight, double eps, double scale, Tensor& out,
                       Tensor& rstd) override;
  void rmsnorm_backward(const Tensor& x, const Tensor& weight, const Tensor& rstd, double scale,
                        const Tensor& dout, Tensor& dx, Tensor* dweight) override;
  void linear_forward(const Tensor& x, const Tensor& w, Tensor& out) override;
  void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dout, Tensor& dx, Tensor& dw,
                       bool accumulate_dx) override;
  void rope(Tensor& x, int batch, int seq, int heads, int head_dim, std::int64_t row_stride,
            int pos_offset, double theta, RopeStyle style, bool inverse) override;
  void swiglu_forward(const Tensor& gate, const Tensor& up, Tensor& out) override;
  void swiglu_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, Tensor& dgate,
                       Tensor& dup) override;

  // backend_diff.cpp
  void diff_lambda_forward(const Tensor& lq1, const Tensor& lk1, const Tensor& lq2,
                           const Tensor& lk2, double lambda_init, Tensor& lambda) override;
  void diff_lambda_backward(const Tensor& lq1, const Tensor& lk1, const Tensor& lq2,
                            const Tensor& lk2, const Tensor& dlambda, Tensor& dlq1, Tensor& dlk1,
                            Tensor& dlq2, Tensor& dlk2) override;
  void v2_combine_forward(const Tensor& a, const Tensor& gate_logits, Tensor& out) override;
  void v2_combine_backward(const Tensor& a, const Tensor& gate_logits, const Tensor& dout,
                           Tensor& da, Tensor& dgate_logits) override;

  // backend_loss.cpp
  void cross_entropy_forward_backward(const Tensor& logits, const Tensor& targets, float grad_scale,
                                      Tensor& losses, Tensor& dlogits) override;
  void cross_entropy_forward(const Tensor& logits, const Tensor& targets, Tensor& losses) override;

  // backend_attention.cpp
  void diff_v2_attention_forward(const AttentionGeometry& g, const Tensor& q, const Tensor& k,
                                 const Tensor& v, const Tensor& gate_logits, Tensor& att,
                                 Tensor& lse, Tensor& out) override;
  void softmax_attention_forward(const AttentionGeometry& g, const Tensor& q, const Tensor& k,
                                 const Tensor& v, Tensor& out, Tensor& lse) override;
  void softmax_attention_backward(const AttentionGeometry& g, const Tensor& q, const Tensor& k,
                                  const Tensor& v, const Tensor& out, const Tensor& lse,
                                  const Tensor& dout, Tensor& dq, Tensor& dk, Tensor& dv) override;
  void diff_attention_forward(const AttentionGeometry& g, const Tensor& q, const Tensor& k,
                              const Tensor& v, const Tensor& lambda, Tensor& out, Tensor& out2,
                              Tensor& lse) override;
  void diff_attention_backward(const AttentionGeometry& g, const Tensor& q, const Tensor& k,
                               const Tensor& v, const Tensor& lambda, const Tensor& out,
                               const Tensor& out2, const Tensor& lse, const Tensor& dout,
                               Tensor& dq, Tensor& dk, Tensor& dv, Tensor& dlambda) override;

  // backend_engine.cpp: the engine's inference ops, graph capture, free memory
  void linear_forward_concat(const Tensor& x, const std::vector<const Tensor*>& ws,
                             Tensor& out) override;
  void linear_forward_accumulate(const Tensor& x, const Tensor& w, Tensor& acc) override;
  void swiglu_linear_forward(const Tensor& x, const Tensor& w_gate, const Tensor& w_up,
                             Tensor& gate, Tensor& up, Tensor& out) override;
  void rmsnorm_linear_forward_concat(const Tensor& x, const Tensor& norm_w, double eps,
                                     const std::vector<const Tensor*>& ws, Tensor& xn, Tensor& rstd,
                                     Tensor& out) override;
  void rmsnorm_swiglu_linear_forward(const Tensor& x, const Tensor& norm_w, double eps,
                                     const Tensor& w_gate, const Tensor& w_up, Tensor& xn,
                                     Tensor& rstd, Tensor& gate, Tensor& up, Tensor& out) override;
  void rmsnorm_qkv_rope_kv_write(const Tensor& x, const Tensor& norm_w, double eps,
                                 const Tensor& wq, const Tensor& wk, const Tensor& wv, Tensor& xn,
                                 Tensor& rstd, Tensor& qkv, const Tensor& positions, int head_dim,
                                 double theta, RopeStyle style, const Tensor& slots, Tensor& k_pool,
                                 Tensor& v_pool) override;
  void kv_cache_write(const Tensor& k, std::int64_t k_stride, const Tensor& v,
                      std::int64_t v_stride, const Tensor& slots, Tensor& k_pool,
                      Tensor& v_pool) override;
  void kv_cache_gather(const Tensor& k_pool, const Tensor& v_pool, const Tensor& block_table,
                       int block_size, Tensor& k, Tensor& v) override;
  void rope_positions(Tensor& x, std::int64_t row_stride, const Tensor& positions, int heads,
                      int head_dim, double theta, RopeStyle style) override;
  void rope_kv_cache_write(Tensor& qkv, std::int64_t row_stride, const Tensor& positions,
                           int q_heads, int k_heads, int head_dim, double theta, RopeStyle style,
                           const Tensor& slots, Tensor& k_pool, Tensor& v_pool) override;
  std::int64_t paged_attention_workspace_bytes(const PagedAttentionGeometry& g) const override;
  void paged_attention_decode(const PagedAttentionGeometry& g, const Tensor& q,
                              const Tensor& k_pool, const Tensor& v_pool,
                              const Tensor& block_tables, const Tensor& context_lens,
                              const Tensor& lambda, Tensor& out, Tensor& workspace) override;
  void paged_attention_decode_head_norm(const PagedAttentionGeometry& g, const Tensor& q,
                                        const Tensor& k_pool, const Tensor& v_pool,
                                        const Tensor& block_tables, const Tensor& context_lens,
                                        const Tensor& lambda, const Tensor& head_norm, double eps,
                                        double scale, Tensor& att, Tensor& out, Tensor& head_rstd,
                                        Tensor& workspace) override;
  std::int64_t sample_workspace_bytes(std::int64_t rows, std::int64_t vocab) const override;
  void sample_tokens(const Tensor& logits, const Tensor& params, int top_n, Tensor& tokens,
                     Tensor& logprobs, Tensor& top_ids, Tensor& top_logprobs,
                     Tensor& workspace) override;
  bool supports_capture() const override { return true; }
  void begin_capture() override;
  std::unique_ptr<CapturedWork> end_capture() override;
  std::int64_t free_device_memory() override;

  // backend_probe.cpp (evaluation probes)
  void attention_scores(const AttentionGeometry& g, ProbeCombine combine, const Tensor& q,
                        const Tensor& k, Tensor& scores) override;
  void attention_logits_quantize(const AttentionGeometry& g, int bits, bool per_head,
                                 Tensor& scores) override;
  void attention_softmax(const AttentionGeometry& g, const Tensor& scores, Tensor& probs) override;
  void attention_probs_value(const AttentionGeometry& g, ProbeCombine combine, const Tensor& probs,
                             const Tensor& v, const Tensor& lambda, const Tensor& gate_logits,
                             Tensor& out) override;
  void abs_histogram(const Tensor& x, const AttentionGeometry* scores, Tensor& counts) override;
  std::int64_t abs_select_at_least(const Tensor& x, const AttentionGeometry* scores,
                                   double threshold, Tensor& out) override;
  void kl_divergence_rows(const Tensor& ref_logits, const Tensor& logits, Tensor& out) override;

  // backend_optimizer.cpp
  double sum_of_squares(const Tensor& t) override;
  void scale_inplace(Tensor& t, double factor) override;
  void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, double lr, double beta1,
                  double beta2, double eps, double weight_decay, int step) override;

 private:
  cudaStream_t stream() const { return context_.stream(); }
  // Device scratch of at least `bytes` (256-byte aligned) from the caching allocator; freed when
  // the returned tensor goes, which is safe because all work is ordered on one stream.
  static Tensor scratch(std::size_t bytes);
  // The checked plan of one attention call, for the backend's kernel family.
  AttentionPlan attention_plan(const AttentionGeometry& g, AttentionKind kind) const {
    return AttentionPlan::make(g, kind, attention_kernels_);
  }

  // The device address of `bytes` of host memory at `host`, inside a pin_host registration;
  // null outside one.
  void* mapped_device_pointer(const void* host, std::size_t bytes) const;

  CudaContext& context_;
  std::unique_ptr<CublasLtLinear> linear_;
  AttentionKernels attention_kernels_;
  // pin_host registrations: host base address -> (bytes, device address). Shared with the
  // handles pin_host returns, which may outlive the backend object.
  struct Pinned {
    std::size_t bytes;
    void* device;
  };
  struct PinnedRegistry {
    std::mutex mutex;
    std::map<std::uintptr_t, Pinned> by_host;
  };
  std::shared_ptr<PinnedRegistry> pinned_ = std::make_shared<PinnedRegistry>();
};

}  // namespace difftx::cuda
