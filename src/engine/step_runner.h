// StepRunner: runs scheduler plans on the model's backend. It packs a plan's inputs (token ids,
// positions, KV slots, block tables, context lengths, logit rows, sampling parameters) into one
// pinned host buffer, queues their upload, the model's paged forward, the sampling op and the
// download of the sampled tokens (with log-probabilities) on the backend's queue, and returns;
// collect() waits for the oldest queued step. Two steps may be queued: the engine queues step
// t + 1 before waiting for step t (look-ahead), its decode rows fed with step t's sampled tokens
// on the device (patches of the upload), so the device does not idle while the host applies
// step t. Each slot of the two has its own host buffers. Decode-only steps are padded to a
// batch-size bucket (1, 2, 4, ... max_batch) and, where the backend captures work (CUDA graphs),
// replayed from a graph captured per bucket. Every buffer is allocated at construction: a step
// allocates nothing on the device.
#pragma once

#include <array>
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
  ~StepRunner();
  StepRunner(const StepRunner&) = delete;
  StepRunner& operator=(const StepRunner&) = delete;
  void allocate_kv(std::int64_t num_blocks);

  // Queues the plan's step and returns without waiting for it; at most two steps are queued.
  // A decode row with fed_from >= 0 takes its input token from that sampling row of the step
  // submitted just before.
  void submit(const StepPlan& plan);
  // Waits for the oldest queued step; one result per sampling row (decode rows, then sampling
  // prefill rows, in its plan's order).
  std::vector<SampledToken> collect();
  int queued() const { return queued_; }
  // Forgets the queued steps and waits for all queued device work (after an error).
  void drop_queued();

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
  // One queued step's host side.
  struct Slot {
    Tensor staging;                                  // host i32: its packed inputs
    Tensor results;                                  // host i32: its sampled tokens, downloaded
    std::shared_ptr<void> staging_pin, results_pin;  // page locks (CUDA), released first
    std::unique_ptr<QueueMark> done;                 // reached when the download is done
    int sampled = 0, m = 0, top_n = 0;
  };
  Tensor inputs_;            // device i32: the packed inputs of the step running
  Tensor logits_;            // (max_batch, V) param dtype
  Tensor results_;           // device i32: tokens, logprobs (f32 bits), top ids, top logprobs
  Tensor sample_workspace_;  // the sampling op's scratch (none on the CPU)
  std::array<Slot, 2> slots_;
  int next_slot_ = 0;      // the slot the next submit fills
  int queued_ = 0;         // steps submitted and not collected
  int last_sampled_ = -1;  // sampling rows of the step submitted last (-1: none yet)
  std::map<std::pair<int, int>, std::unique_ptr<CapturedWork>> graphs_;  // (bucket, top_n)
};

}  // namespace difftx::engine
