// StepRunner: runs one scheduler plan on the model's backend. It packs the plan's inputs (token
// ids, positions, KV slots, block tables, context lengths, logit rows, sampling parameters)
// into one host buffer, copies it to the device in one transfer, runs the model's paged forward
// and the sampling op, and copies the sampled tokens (with log-probabilities) back in one
// transfer. Decode-only steps are padded to a batch-size bucket (1, 2, 4, ... max_batch) and,
// where the backend captures work (CUDA graphs), replayed from a graph captured per bucket.
// Every buffer is allocated at construction: a step allocates nothing on the device.
#pragma once

#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "difftx/engine/scheduler.h"
#include "difftx/model/paged_forward.h"

namespace difftx::engine {

class StepRunner {
 public:
  // Allocates the step buffers; the KV pools come with allocate_kv (sized after the buffers,
  // from the memory left).
  StepRunner(Model& model, const EngineOptions& options);
  void allocate_kv(std::int64_t num_blocks);

  // Runs the plan and returns one result per sampling row (decode rows, then sampling prefill
  // rows, in the plan's order).
  std::vector<SampledToken> run(const StepPlan& plan);

  int max_blocks_per_sequence() const { return max_blocks_; }
  const PagedKvCache& kv() const { return kv_; }
  int graphs_captured() const { return static_cast<int>(graphs_.size()); }
  // Device bytes of the step buffers (everything but the weights and the KV pools).
  std::int64_t buffer_bytes() const;

  // Blocks of each sequence's block table, and the bucket a decode batch of `rows` pads to.
  static int blocks_per_sequence(int max_seq_len, int block_size);
  int bucket(int rows) const;

 private:
  // Offsets (in i32 words) of the packed inputs of a step with n rows, d decode rows, r
  // block-table rows and m sampling rows.
  struct Layout {
    std::int64_t ids, positions, slots, context_lens, tables, logit_rows, params, total;
  };
  Layout layout(int n, int d, int r, int m) const;
  // The device views of a packed step, for the model and the sampler.
  PagedBatch batch_views(const Layout& l, int n, int d, int r, int m, bool all_rows) const;
  // Runs the forward and the sampler for a packed step (eagerly, or while capturing).
  void launch(const PagedBatch& batch, const Layout& l, int m, int top_n);
  std::int64_t results_words(int m, int top_n) const { return std::int64_t(m) * (2 + 2 * top_n); }

  Model& model_;
  Backend& backend_;
  EngineOptions options_;
  int max_blocks_ = 0;
  PagedKvCache kv_;
  std::unique_ptr<PagedForward> forward_;
  Tensor staging_;           // host i32: the packed inputs being built
  Tensor inputs_;            // device i32 copy of them (the staging tensor itself on the CPU)
  Tensor logits_;            // (max_batch, V) param dtype
  Tensor results_;           // device i32: tokens, logprobs (f32 bits), top ids, top logprobs
  Tensor results_host_;      // host i32
  Tensor sample_workspace_;  // the sampling op's scratch (none on the CPU)
  std::map<std::pair<int, int>, std::unique_ptr<CapturedWork>> graphs_;  // (bucket, top_n)
};

}  // namespace difftx::engine
