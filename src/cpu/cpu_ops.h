// Templated CPU kernels (T = float or double) behind the CPU backend. Raw pointers, row-major,
// shapes in comments; each op family lives in its own .cpp with explicit instantiations.
#pragma once

#include <cmath>
#include <cstdint>

#include "difftx/core/paged_attention.h"
#include "difftx/model/backend.h"

namespace difftx::cpu {

using i64 = std::int64_t;

// exp evaluated in the kernel's own precision: single-precision expf for T = float (about
// twice as fast as double exp), exact double exp for the fp64 oracle.
template <typename T>
inline double exp_in(double x) {
  if constexpr (sizeof(T) == 4) {
    return double(std::exp(float(x)));
  } else {
    return std::exp(x);
  }
}

// Dot product accumulated in double.
template <typename T>
double dot(const T* a, const T* b, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += double(a[i]) * double(b[i]);
  return s;
}

template <typename T>
void embedding_forward(const std::int32_t* ids, i64 n, const T* table, i64 vocab, i64 e, T* out);
template <typename T>
void embedding_backward(const std::int32_t* ids, i64 n, const T* dout, i64 vocab, i64 e, T* dtable);

template <typename T>
void rmsnorm_forward(const T* x, const T* weight, i64 n, i64 c, double eps, double scale, T* out,
                     T* rstd);
template <typename T>
void rmsnorm_backward(const T* x, const T* weight, const T* rstd, i64 n, i64 c, double scale,
                      const T* dout, T* dx, T* dweight);

// out (n, m) = x (n, k) w^T with w (m, k)
template <typename T>
void linear_forward(const T* x, const T* w, i64 n, i64 k, i64 m, T* out);
// out (n, m) with row stride ldo: = x w^T, or += when accumulate.
template <typename T>
void linear_forward_strided(const T* x, const T* w, i64 n, i64 k, i64 m, T* out, i64 ldo,
                            bool accumulate);
template <typename T>
void linear_backward(const T* x, const T* w, const T* dout, i64 n, i64 k, i64 m, T* dx, T* dw,
                     bool accumulate_dx);

template <typename T>
void rope(T* x, int batch, int seq, int heads, int head_dim, i64 row_stride, int pos_offset,
          double theta, RopeStyle style, bool inverse);

template <typename T>
void swiglu_forward(const T* gate, const T* up, i64 n, T* out);
template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dout, i64 n, T* dgate, T* dup);

template <typename T>
void softmax_attention_forward(const AttentionGeometry& g, const T* q, const T* k, const T* v,
                               T* out, T* lse);
template <typename T>
void softmax_attention_backward(const AttentionGeometry& g, const T* q, const T* k, const T* v,
                                const T* out, const T* lse, const T* dout, T* dq, T* dk, T* dv);

template <typename T>
void diff_attention_forward(const AttentionGeometry& g, const T* q, const T* k, const T* v,
                            T lambda, T* out, T* out2, T* lse);
template <typename T>
void diff_attention_backward(const AttentionGeometry& g, const T* q, const T* k, const T* v,
                             T lambda, const T* out, const T* out2, const T* lse, const T* dout,
                             T* dq, T* dk, T* dv, T* dlambda);

template <typename T>
void v2_combine_forward(const T* a, const T* gate_logits, i64 n, int h, int d, T* out);
template <typename T>
void v2_combine_backward(const T* a, const T* gate_logits, const T* dout, i64 n, int h, int d,
                         T* da, T* dgate_logits);

template <typename T>
void cross_entropy(const T* logits, const std::int32_t* targets, i64 n, i64 vocab,
                   double grad_scale, T* losses, T* dlogits /*null: forward only*/);

// ---- inference ops (engine)

// Row n of k (stride k_stride) / v (stride v_stride) -> row slots[n] of the pools (skipped when
// negative). k_width / v_width: elements per row.
template <typename T>
void kv_cache_write(const T* k, i64 k_stride, const T* v, i64 v_stride, const std::int32_t* slots,
                    i64 n, i64 k_width, i64 v_width, T* k_pool, T* v_pool);
// The first n tokens of a sequence (block table, block_size) -> contiguous k, v.
template <typename T>
void kv_cache_gather(const T* k_pool, const T* v_pool, const std::int32_t* block_table,
                     int block_size, i64 n, i64 k_width, i64 v_width, T* k, T* v);

template <typename T>
void rope_positions(T* x, i64 n, i64 row_stride, const std::int32_t* positions, int heads,
                    int head_dim, double theta, RopeStyle style);

template <typename T>
void paged_attention_decode(const PagedAttentionGeometry& g, const T* q, const T* k_pool,
                            const T* v_pool, const std::int32_t* block_tables,
                            const std::int32_t* context_lens, double lambda, T* out);

// logits (rows, vocab) of type L; logprobs / top_logprobs of type S.
template <typename L, typename S>
void sample_tokens(const L* logits, i64 rows, i64 vocab, const std::int32_t* params, int top_n,
                   std::int32_t* tokens, S* logprobs, std::int32_t* top_ids, S* top_logprobs);

template <typename T>
void adamw_step(T* param, const T* grad, T* m, T* v, i64 n, double lr, double beta1, double beta2,
                double eps, double weight_decay, int step);

}  // namespace difftx::cpu
