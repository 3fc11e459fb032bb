// The model's token-batch forward over a paged KV cache (see paged_forward.h): the layer loop of
// model_forward.cpp on a step's rows, with K/V written to the block pools and attention split
// into decode rows (paged decode attention) and prefill chunks (the sequence's cache gathered,
// then the fused flash attention op at its query offset).
#include <algorithm>
#include <cmath>

#include "difftx/model/paged_forward.h"

namespace difftx {

PagedKvCache PagedKvCache::allocate(const Model& model, int block_size, std::int64_t num_blocks) {
  const ModelConfig& c = model.config();
  Backend& backend = const_cast<Model&>(model).backend();
  DIFFTX_CHECK(block_size >= 1 && num_blocks >= 1, "KV pools: {} blocks of {} tokens", num_blocks,
               block_size);
  PagedKvCache kv;
  kv.block_size = block_size;
  kv.num_blocks = num_blocks;
  const std::int64_t slots = num_blocks * block_size;
  for (int l = 0; l < c.n_layers; ++l) {
    kv.k.push_back(Tensor::empty({slots, c.k_dim()}, backend.act_dtype(), backend.device()));
    kv.v.push_back(Tensor::empty({slots, c.v_dim()}, backend.act_dtype(), backend.device()));
  }
  return kv;
}

std::int64_t PagedKvCache::block_bytes(const ModelConfig& c, DType act_dtype, int block_size) {
  return std::int64_t(c.n_layers) * block_size * (c.k_dim() + c.v_dim()) *
         static_cast<std::int64_t>(dtype_size(act_dtype));
}

// Step buffers for limits.max_tokens rows; a step uses leading rows of each.
struct PagedForward::Buffers {
  Tensor x;             // (N, E) residual stream
  Tensor xn;            // (N, E) normed input of a block
  Tensor rstd;          // (N) stat
  Tensor qkv;           // (N, q_dim + k_dim + v_dim): one projection; q and k after RoPE
  Tensor gate_logits;   // V2: (N, h)
  Tensor att;           // raw attention: V1 (N, h*2d), V2 (N, 2h*d); softmax: = mixed
  Tensor mixed;         // (N, attn_out_dim): input of W_o
  Tensor head_rstd;     // V1: (N*h) stat
  Tensor gate, up;      // (N, F): scratch of the unfused SwiGLU path
  Tensor hsw;           // (N, F): silu(gate) * up
  Tensor selected;      // (M, E): final-norm rows whose logits are wanted
  Tensor lambdas;       // V1: (L) stat, lambda of each layer
  Tensor decode_ws;     // paged decode attention scratch
  Tensor k_ctx, v_ctx;  // (max_context, k_dim), (max_context, v_dim): a gathered cache
  Tensor lse;           // (q_heads * max_prefill) stat, the flash op's statistics
};

PagedForward::PagedForward(Model& model, const PagedForwardLimits& limits, int block_size)
    : model_(model), limits_(limits), block_size_(block_size) {
  const ModelConfig& c = model.config();
  DIFFTX_CHECK(limits.max_tokens >= 1 && limits.max_decode >= 0 &&
                   limits.max_decode <= limits.max_tokens && limits.max_blocks >= 1 &&
                   limits.max_context >= 1 && limits.max_prefill >= 1 && limits.max_logits >= 1 &&
                   block_size >= 1,
               "paged forward: bad limits (tokens {}, decode {}, blocks {}, context {}, prefill "
               "{}, logits {})",
               limits.max_tokens, limits.max_decode, limits.max_blocks, limits.max_context,
               limits.max_prefill, limits.max_logits);
  Backend& b = model.backend();
  const Device dev = b.device();
  const DType act = b.act_dtype(), stat = b.param_dtype();
  const std::int64_t N = limits.max_tokens, E = c.d_model, F = c.ffn_dim;
  const int h = c.n_heads;
  auto A = [&](Shape s) { return Tensor::empty(std::move(s), act, dev); };
  auto S = [&](Shape s) { return Tensor::empty(std::move(s), stat, dev); };
  buffers_ = std::make_unique<Buffers>();
  Buffers& w = *buffers_;
  w.x = A({N, E});
  w.xn = A({N, E});
  w.rstd = S({N});
  w.qkv = A({N, std::int64_t(c.q_dim()) + c.k_dim() + c.v_dim()});
  w.mixed = A({N, c.attn_out_dim()});
  switch (c.attention) {
    case AttentionKind::diff_v1:
      w.att = A({N, c.attn_out_dim()});
      w.head_rstd = S({N * h});
      w.lambdas = S({c.n_layers});
      break;
    case AttentionKind::diff_v2:
      w.att = A({N, c.q_dim()});
      w.gate_logits = A({N, h});
      break;
    case AttentionKind::softmax:
      w.att = w.mixed;
      break;
  }
  w.gate = A({N, F});
  w.up = A({N, F});
  w.hsw = A({N, F});
  w.selected = A({limits.max_logits, E});
  PagedAttentionGeometry g = decode_geometry(limits.max_decode);
  const std::int64_t ws = b.paged_attention_workspace_bytes(g);
  if (ws > 0) {  // zeroed once: it holds the op's arrival counters
    w.decode_ws = Tensor::empty({(ws + 7) / 8}, DType::f64, dev);
    b.fill(w.decode_ws, 0.0);
  }
  w.k_ctx = A({limits.max_context, c.k_dim()});
  w.v_ctx = A({limits.max_context, c.v_dim()});
  w.lse = S({std::int64_t(c.q_heads()) * limits.max_prefill});
  refresh();
}

PagedForward::~PagedForward() = default;

void PagedForward::refresh() {
  const ModelConfig& c = model_.config();
  if (c.attention != AttentionKind::diff_v1) return;
  const ModelWeights& W = model_.weights();
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = W.layers[static_cast<std::size_t>(l)];
    Tensor lambda = buffers_->lambdas.rows(l, l + 1);  // (1)
    model_.backend().diff_lambda_forward(lw.lambda_q1, lw.lambda_k1, lw.lambda_q2, lw.lambda_k2,
                                         lambda_init(l), lambda);
  }
}

std::int64_t PagedForward::buffer_bytes() const {
  const Buffers& w = *buffers_;
  std::int64_t total = 0;
  for (const Tensor* t :
       {&w.x, &w.xn, &w.rstd, &w.qkv, &w.gate_logits, &w.mixed, &w.head_rstd, &w.gate, &w.up,
        &w.hsw, &w.selected, &w.lambdas, &w.decode_ws, &w.k_ctx, &w.v_ctx, &w.lse}) {
    if (t->defined()) total += static_cast<std::int64_t>(t->nbytes());
  }
  if (model_.config().attention != AttentionKind::softmax)
    total += static_cast<std::int64_t>(w.att.nbytes());
  return total;
}

PagedAttentionGeometry PagedForward::decode_geometry(int batch) const {
  const ModelConfig& c = model_.config();
  PagedAttentionGeometry g;
  g.kind = c.attention == AttentionKind::diff_v1 ? PagedAttentionKind::diff
                                                 : PagedAttentionKind::softmax;
  g.batch = batch;
  g.q_heads = c.q_heads();
  g.k_heads = c.k_heads();
  g.v_heads = c.n_kv_heads;
  g.head_dim = c.head_dim;
  g.v_head_dim = c.v_head_dim();
  g.scale = 1.0 / std::sqrt(double(c.head_dim));
  g.block_size = block_size_;
  g.max_blocks = limits_.max_blocks;
  g.num_slots = 0;
  g.q_row_stride = std::int64_t(c.q_dim()) + c.k_dim() + c.v_dim();  // rows of the qkv buffer
  return g;
}

void PagedForward::run(const PagedBatch& batch, PagedKvCache& kv, Tensor& logits) {
  const ModelConfig& c = model_.config();
  const int N = batch.num_tokens, D = batch.num_decode;
  const int M = batch.logit_rows.defined() ? static_cast<int>(batch.logit_rows.numel()) : N;
  DIFFTX_CHECK(N >= 1 && N <= limits_.max_tokens && D >= 0 && D <= limits_.max_decode && D <= N &&
                   M >= 0 && M <= limits_.max_logits,
               "paged forward: a step of {} rows ({} decode, {} logits) exceeds the limits ({}, "
               "{}, {})",
               N, D, M, limits_.max_tokens, limits_.max_decode, limits_.max_logits);
  DIFFTX_CHECK(kv.block_size == block_size_ && static_cast<int>(kv.k.size()) == c.n_layers,
               "paged forward: KV pools of block size {} for {} layers, expected {} and {}",
               kv.block_size, kv.k.size(), block_size_, c.n_layers);
  int prefill_rows = 0;
  for (const PagedPrefill& p : batch.prefills) {
    DIFFTX_CHECK(p.row == D + prefill_rows && p.length >= 1 && p.length <= limits_.max_prefill &&
                     p.position >= 0 && p.position + p.length <= limits_.max_context,
                 "paged forward: prefill chunk at row {} ({} tokens from position {}) is out of "
                 "order or too long",
                 p.row, p.length, p.position);
    prefill_rows += p.length;
  }
  DIFFTX_CHECK(D + prefill_rows == N, "paged forward: {} decode + {} prefill rows != {} rows", D,
               prefill_rows, N);

  Backend& b = model_.backend();
  const ModelWeights& W = model_.weights();
  Buffers& w = *buffers_;
  auto R = [N](const Tensor& t) { return t.rows(0, N); };  // the step's rows of a buffer
  Tensor x = R(w.x), xn = R(w.xn), rstd = R(w.rstd);
  Tensor gate = R(w.gate), up = R(w.up), hsw = R(w.hsw);
  b.embedding_forward(batch.ids, W.tok_embeddings, x);
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& lw = W.layers[static_cast<std::size_t>(l)];
    attention(l, batch, kv);                            // the attention RMSNorm included
    b.linear_forward_accumulate(R(w.mixed), lw.wo, x);  // x += W_o(mixed)
    b.rmsnorm_swiglu_linear_forward(x, lw.ffn_norm, c.norm_eps, lw.w_gate, lw.w_up, xn, rstd, gate,
                                    up, hsw);        // hsw = SwiGLU(rmsnorm(x))
    b.linear_forward_accumulate(hsw, lw.w_down, x);  // x += W_down(hsw)
  }
  if (M == 0) return;  // prefill chunks that sample nothing
  DIFFTX_CHECK(logits.defined() && logits.numel() == std::int64_t(M) * c.vocab_size,
               "paged forward: logits must hold ({}, {}), got {}", M, c.vocab_size,
               logits.defined() ? logits.describe() : "nothing");
  // The final norm and the output head through the decode-path projection (CUDA: the GEMV
  // kernel with the norm folded in, for a few rows).
  if (batch.logit_rows.defined()) {
    b.rmsnorm_forward(x, W.norm, c.norm_eps, 1.0, xn, rstd);
    Tensor selected = w.selected.rows(0, M);
    b.embedding_forward(batch.logit_rows, xn, selected);  // a row gather
    b.linear_forward_concat(selected, {&W.output}, logits);
  } else {
    b.rmsnorm_linear_forward_concat(x, W.norm, c.norm_eps, {&W.output}, xn, rstd, logits);
  }
}

void PagedForward::attention(int l, const PagedBatch& batch, PagedKvCache& kv) {
  const ModelConfig& c = model_.config();
  Backend& b = model_.backend();
  const LayerWeights& lw = model_.weights().layers[static_cast<std::size_t>(l)];
  Buffers& w = *buffers_;
  const int N = batch.num_tokens, D = batch.num_decode, d = c.head_dim;
  const std::int64_t width = std::int64_t(c.q_dim()) + c.k_dim() + c.v_dim();  // qkv row
  Tensor x = w.x.rows(0, N), xn = w.xn.rows(0, N), rstd = w.rstd.rows(0, N);
  Tensor qkv = w.qkv.rows(0, N);
  // xn = rmsnorm(x), (N, q | k | v) = xn [W_q; W_k; W_v]^T, RoPE on q and k at each row's
  // position, then k and v written to the pools by slot.
  b.rmsnorm_qkv_rope_kv_write(x, lw.attn_norm, c.norm_eps, lw.wq, lw.wk, lw.wv, xn, rstd, qkv,
                              batch.positions, d, c.rope_theta, c.rope_style, batch.slots,
                              kv.k[static_cast<std::size_t>(l)], kv.v[static_cast<std::size_t>(l)]);
  Tensor& k_pool = kv.k[static_cast<std::size_t>(l)];
  Tensor& v_pool = kv.v[static_cast<std::size_t>(l)];
  const bool v1 = c.attention == AttentionKind::diff_v1;
  const bool v2 = c.attention == AttentionKind::diff_v2;
  const Tensor lambda = v1 ? w.lambdas.rows(l, l + 1) : Tensor();  // (1)
  if (v2) {
    Tensor gate_logits = w.gate_logits.rows(0, N);            // (N, h)
    b.linear_forward_concat(xn, {&lw.wlambda}, gate_logits);  // the GEMV for a few rows
  }
  auto rows = [](const Tensor& t, int begin, int count) { return t.rows(begin, begin + count); };

  // Decode rows: one query each, over the pool through the block tables. The KV write above
  // stores each decode sequence's newest token only (a sequence is a decode row or a prefill
  // chunk, never both, and blocks are not shared): CUDA's staged paged attention reads every
  // older token before it waits on that kernel (PDL), so this must stay so.
  if (D > 0) {
    PagedAttentionGeometry g = decode_geometry(D);
    g.num_slots = kv.num_blocks * kv.block_size;
    Tensor att = rows(w.att, 0, D);
    if (v1) {  // with the per-head RMSNorm, times (1 - lambda_init), into W_o's input
      Tensor mixed = rows(w.mixed, 0, D);
      Tensor head_rstd = w.head_rstd.rows(0, std::int64_t(D) * c.n_heads);
      b.paged_attention_decode_head_norm(g, rows(w.qkv, 0, D), k_pool, v_pool,
                                         batch.block_tables.rows(0, D), batch.context_lens, lambda,
                                         lw.head_norm, c.norm_eps, 1.0 - lambda_init(l), att, mixed,
                                         head_rstd, w.decode_ws);
    } else {
      b.paged_attention_decode(g, rows(w.qkv, 0, D), k_pool, v_pool, batch.block_tables.rows(0, D),
                               batch.context_lens, lambda, att, w.decode_ws);
    }
    if (v2) {
      Tensor mixed = rows(w.mixed, 0, D);
      b.v2_combine_forward(att.reshape({D, c.q_heads(), d}), rows(w.gate_logits, 0, D), mixed);
    }
  }
  // Prefill chunks: the sequence's cache (this chunk included) gathered, then flash attention.
  for (const PagedPrefill& p : batch.prefills) {
    const int kv_len = p.position + p.length;
    Tensor k_ctx = w.k_ctx.rows(0, kv_len), v_ctx = w.v_ctx.rows(0, kv_len);
    b.kv_cache_gather(k_pool, v_pool, batch.block_tables.rows(p.table_row, p.table_row + 1),
                      kv.block_size, k_ctx, v_ctx);
    AttentionGeometry g = packed_attention_geometry(1, p.length, kv_len, p.position, c.q_heads(),
                                                    c.k_heads(), c.n_kv_heads, d, c.v_head_dim());
    g.q_row_stride = width;  // q is the first block of the qkv rows
    Tensor qc = rows(w.qkv, p.row, p.length), att = rows(w.att, p.row, p.length);
    Tensor lse = w.lse.rows(0, std::int64_t(c.q_heads()) * p.length);
    switch (c.attention) {
      case AttentionKind::diff_v1: {
        Tensor none;
        b.diff_attention_forward(g, qc, k_ctx, v_ctx, lambda, att, none, lse);
        break;
      }
      case AttentionKind::diff_v2: {
        Tensor mixed = rows(w.mixed, p.row, p.length);
        b.diff_v2_attention_forward(g, qc, k_ctx, v_ctx, rows(w.gate_logits, p.row, p.length), att,
                                    lse, mixed);
        break;
      }
      case AttentionKind::softmax:
        b.softmax_attention_forward(g, qc, k_ctx, v_ctx, att, lse);
        break;
    }
  }
  if (v1 && N > D) {
    // The prefill rows' per-head RMSNorm over 2d channels, times (1 - lambda_init): rows are
    // (token, head); the decode rows were normed by their attention op.
    const std::int64_t h = c.n_heads, first = std::int64_t(D) * h, head_rows = (N - D) * h;
    Tensor mixed = w.mixed.rows(D, N).reshape({head_rows, 2 * d});
    Tensor head_rstd = w.head_rstd.rows(first, first + head_rows);
    b.rmsnorm_forward(w.att.rows(D, N).reshape({head_rows, 2 * d}), lw.head_norm, c.norm_eps,
                      1.0 - lambda_init(l), mixed, head_rstd);
  }
}

}  // namespace difftx
