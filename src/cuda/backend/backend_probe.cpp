// CudaBackend entries of the evaluation probes' ops (backend.h, attention_probe.h): check the
// tensors against the geometry, then call the launchers of ops/probe_attention.cuh and
// ops/probe_stats.cuh on the backend's stream.
#include "../attention/probe_attention.cuh"
#include "../ops/probe_stats.cuh"
#include "cuda_backend.h"
#include "validate.h"

namespace difftx::cuda {
namespace {

static_assert(kProbeHistogramBins == kAbsHistogramBins, "the CUDA histogram has the model's bins");

// The visible-row description of a scores tensor (null for a plain tensor).
const ScoreRows* score_rows(const AttentionGeometry* g, ScoreRows& storage) {
  if (!g) return nullptr;
  storage = ScoreRows{g->q_len, g->kv_len, g->q_offset};
  return &storage;
}

std::int64_t score_numel(const AttentionGeometry& g) {
  return std::int64_t(g.batch) * g.q_heads * g.q_len * g.kv_len;
}

void check_geometry(const AttentionGeometry& g, ProbeCombine c, const char* op) {
  DIFFTX_CHECK(g.batch > 0 && g.q_len > 0 && g.q_offset >= 0 && g.kv_len >= g.q_offset + g.q_len &&
                   g.q_heads > 0 && g.k_heads > 0 && g.v_heads > 0 && g.head_dim > 0 &&
                   g.v_head_dim > 0 && g.q_heads % g.k_heads == 0 && g.q_heads % g.v_heads == 0,
               "cuda backend: {}: bad geometry (B={}, T={}, S={}, offset={}, heads q {} k {} v {})",
               op, g.batch, g.q_len, g.kv_len, g.q_offset, g.q_heads, g.k_heads, g.v_heads);
  if (c != ProbeCombine::softmax) {
    DIFFTX_CHECK(g.q_heads % 2 == 0 && (g.q_heads / g.v_heads) % 2 == 0,
                 "cuda backend: {}: a head's two maps must share a value head (q {}, v {})", op,
                 g.q_heads, g.v_heads);
  }
}

// A bf16 operand of `tokens` rows `stride` apart, `width` wide.
void require_rows(const Tensor& t, std::int64_t tokens, std::int64_t stride, std::int64_t width,
                  const char* op, const char* name) {
  require_dtype(t, op, name, {DType::bf16});
  DIFFTX_CHECK(stride >= width && t.numel() >= (tokens - 1) * stride + width,
               "cuda backend: {}: {} is {}, too small for {} rows of stride {} and width {}", op,
               name, t.describe(), tokens, stride, width);
}

void require_scores(const Tensor& t, const AttentionGeometry& g, const char* op, const char* name) {
  require_dtype(t, op, name, {DType::f32});
  require_numel(t, score_numel(g), op, name);
}

}  // namespace

void CudaBackend::attention_scores(const AttentionGeometry& g, ProbeCombine combine,
                                   const Tensor& q, const Tensor& k, Tensor& scores) {
  const char* op = "attention_scores";
  check_geometry(g, combine, op);
  require_rows(q, std::int64_t(g.batch) * g.q_len, g.q_row_stride,
               std::int64_t(g.q_heads) * g.head_dim, op, "q");
  require_rows(k, std::int64_t(g.batch) * g.kv_len, g.kv_row_stride_k,
               std::int64_t(g.k_heads) * g.head_dim, op, "k");
  require_scores(scores, g, op, "scores");
  launch_probe_scores(g, combine, q.raw(), k.raw(), static_cast<float*>(scores.raw()), stream());
}

void CudaBackend::attention_logits_quantize(const AttentionGeometry& g, int bits, bool per_head,
                                            Tensor& scores) {
  const char* op = "attention_logits_quantize";
  require(bits >= 2 && bits <= 15, op, "bits must be in [2, 15]");
  require_scores(scores, g, op, "scores");
  Tensor ws = scratch(probe_quantize_workspace_bytes(g, per_head));
  launch_probe_quantize(g, bits, per_head, static_cast<float*>(scores.raw()), ws.raw(), stream());
}

void CudaBackend::attention_softmax(const AttentionGeometry& g, const Tensor& scores,
                                    Tensor& probs) {
  const char* op = "attention_softmax";
  require_scores(scores, g, op, "scores");
  require_scores(probs, g, op, "probs");
  launch_probe_softmax(g, static_cast<const float*>(scores.raw()), static_cast<float*>(probs.raw()),
                       stream());
}

void CudaBackend::attention_probs_value(const AttentionGeometry& g, ProbeCombine combine,
                                        const Tensor& probs, const Tensor& v, const Tensor& lambda,
                                        const Tensor& gate_logits, Tensor& out) {
  const char* op = "attention_probs_value";
  check_geometry(g, combine, op);
  require(g.v_head_dim <= 256, op, "value head dim above 256");
  require_scores(probs, g, op, "probs");
  require_rows(v, std::int64_t(g.batch) * g.kv_len, g.kv_row_stride_v,
               std::int64_t(g.v_heads) * g.v_head_dim, op, "v");
  const int heads = probe_out_heads(g, combine);
  require_dtype(out, op, "out", {DType::bf16});
  require_numel(out, std::int64_t(g.batch) * g.q_len * heads * g.v_head_dim, op, "out");
  const float* lam = nullptr;
  const void* gate = nullptr;
  if (combine == ProbeCombine::diff_v1) {
    require_dtype(lambda, op, "lambda", {DType::f32});
    require_numel(lambda, 1, op, "lambda");
    lam = static_cast<const float*>(lambda.raw());
  }
  if (combine == ProbeCombine::diff_v2) {
    require_dtype(gate_logits, op, "gate_logits", {DType::bf16});
    require_numel(gate_logits, std::int64_t(g.batch) * g.q_len * heads, op, "gate_logits");
    gate = gate_logits.raw();
  }
  launch_probe_probs_value(g, combine, static_cast<const float*>(probs.raw()), v.raw(), lam, gate,
                           out.raw(), stream());
}

void CudaBackend::abs_histogram(const Tensor& x, const AttentionGeometry* scores, Tensor& counts) {
  const char* op = "abs_histogram";
  require_dtype(x, op, "x", {DType::f32, DType::bf16});
  require_dtype(counts, op, "counts", {DType::f64});
  require_numel(counts, kAbsHistogramBins, op, "counts");
  if (scores) require_numel(x, score_numel(*scores), op, "x (scores)");
  ScoreRows rows;
  launch_abs_histogram(x.raw(), scalar_type(x), x.numel(), score_rows(scores, rows),
                       static_cast<double*>(counts.raw()), stream());
}

std::int64_t CudaBackend::abs_select_at_least(const Tensor& x, const AttentionGeometry* scores,
                                              double threshold, Tensor& out) {
  const char* op = "abs_select_at_least";
  require_dtype(x, op, "x", {DType::f32, DType::bf16});
  require_dtype(out, op, "out", {DType::f32});
  if (scores) require_numel(x, score_numel(*scores), op, "x (scores)");
  Tensor ws = scratch(sizeof(unsigned long long));
  ScoreRows rows;
  return launch_abs_select_at_least(x.raw(), scalar_type(x), x.numel(), score_rows(scores, rows),
                                    threshold, static_cast<float*>(out.raw()), out.numel(),
                                    ws.raw(), stream());
}

void CudaBackend::kl_divergence_rows(const Tensor& ref_logits, const Tensor& logits, Tensor& out) {
  const char* op = "kl_divergence_rows";
  require_dtype(ref_logits, op, "ref_logits", {DType::f32, DType::bf16});
  require_same_dtype(ref_logits, "ref_logits", logits, "logits", op);
  require_dtype(out, op, "out", {DType::f32});
  const std::int64_t n = out.numel();
  require(n > 0 && ref_logits.numel() % n == 0, op, "ref_logits must hold out.numel() rows");
  require_numel(logits, ref_logits.numel(), op, "logits");
  launch_kl_divergence_rows(ref_logits.raw(), logits.raw(), scalar_type(logits), n,
                            ref_logits.numel() / n, static_cast<float*>(out.raw()), stream());
}

}  // namespace difftx::cuda
