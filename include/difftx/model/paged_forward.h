// PagedForward: the model's token-batch forward over a paged KV cache, for the inference
// engine. One call runs a step's tokens through the layers: rows [0, num_decode) are decode
// tokens (one per sequence, attending through block tables with the paged decode attention op),
// the rest are prefill chunks (each sequence's cache gathered into a contiguous scratch and
// attended with the fused flash attention op at its query offset). Every row's K/V are written
// to the pools first. Logits come out only for the rows asked for. All buffers are allocated at
// construction for the limits given, so a step allocates nothing (a CUDA graph can capture it).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "difftx/core/tensor.h"
#include "difftx/model/model.h"

namespace difftx {

// The KV pools of every layer: k[l] (num_blocks * block_size, k_dim), v[l] (..., v_dim) in the
// activation dtype on the backend's device. Block b holds slots [b * block_size, ...).
struct PagedKvCache {
  int block_size = 0;
  std::int64_t num_blocks = 0;
  std::vector<Tensor> k, v;

  // Allocates the pools of `model` (contents undefined).
  static PagedKvCache allocate(const Model& model, int block_size, std::int64_t num_blocks);
  // Bytes one block takes over all layers.
  static std::int64_t block_bytes(const ModelConfig& config, DType act_dtype, int block_size);
};

// A prefill chunk: `length` tokens of one sequence at rows [row, row + length) of the step,
// positions [position, position + length); its block table is row `table_row` of the step's
// block tables.
struct PagedPrefill {
  int row = 0;
  int length = 0;
  int position = 0;
  int table_row = 0;
};

// One step's inputs: device tensors (views into the engine's buffers) plus the host list of
// prefill chunks.
struct PagedBatch {
  int num_tokens = 0;            // N rows
  int num_decode = 0;            // rows [0, num_decode): one decode token per sequence
  Tensor ids, positions, slots;  // (N) i32: token id, position, KV slot (< 0: not written)
  Tensor block_tables;           // (R, max_blocks) i32: decode rows' tables, then prefills'
  Tensor context_lens;           // (num_decode) i32: tokens each decode row attends to
  std::vector<PagedPrefill> prefills;
  Tensor logit_rows;  // (M) i32 rows whose logits are wanted; undefined: all N
};

struct PagedForwardLimits {
  int max_tokens = 0;   // rows per step
  int max_decode = 0;   // decode rows per step
  int max_blocks = 0;   // block-table columns (max_seq_len / block_size, rounded up)
  int max_context = 0;  // longest sequence (tokens)
  int max_prefill = 0;  // longest prefill chunk
  int max_logits = 0;   // logit rows per step
};

class PagedForward {
 public:
  PagedForward(Model& model, const PagedForwardLimits& limits, int block_size);
  ~PagedForward();
  PagedForward(const PagedForward&) = delete;
  PagedForward& operator=(const PagedForward&) = delete;

  // Runs the step; logits (M, V) in the backend's param dtype (f32 on CUDA) are overwritten.
  void run(const PagedBatch& batch, PagedKvCache& kv, Tensor& logits);
  // Re-derives what the forward precomputes from the weights (DIFF V1's per-layer lambda);
  // call after changing the model's parameters.
  void refresh();
  const PagedForwardLimits& limits() const { return limits_; }
  std::int64_t buffer_bytes() const;

 private:
  struct Buffers;
  PagedAttentionGeometry decode_geometry(int batch) const;
  // Projections, RoPE, the K/V write and attention of layer l: fills the mixed buffer.
  void attention(int layer, const PagedBatch& batch, PagedKvCache& kv);
  Model& model_;
  PagedForwardLimits limits_;
  int block_size_;
  std::unique_ptr<Buffers> buffers_;
};

}  // namespace difftx
