// Scheduler: the continuous-batching policy of the engine, on the host, with no device work.
// It owns the sequences (queued, running), their KV block tables and the block pool, and turns
// them into one step plan at a time:
//   1. cancelled sequences end (their blocks return to the pool);
//   2. every running sequence with exactly one token to feed gets a decode row; a new KV block
//      is taken when its position starts one; when the pool is dry the newest running sequence
//      is preempted (blocks freed, back to the queue front, recomputed from its tokens later);
//   3. queued sequences are admitted (oldest first) while the batch has room and the pool holds
//      blocks for all their tokens (plus a 1% watermark), unless this step preempted;
//   4. running sequences with several tokens to feed get one prefill chunk each, at most
//      prefill_chunk tokens, within the step's max_step_tokens.
// A sequence's tokens are its prompt then what it generated; `cached` of them have K/V in the
// pool. A chunk that feeds the last token samples the next one (a decode row always does).
// complete() applies the sampled tokens and ends sequences (EOS, length, context).
//
// Look-ahead: plan_ahead() plans the step after one whose tokens are not known yet (still on
// the device), so the engine can queue it before waiting; its rows take their input tokens from
// that step's sampled rows on the device. It plans only a step that plan() would make the same
// way once the tokens were known: every running sequence decodes in both steps, none is queued
// or cancelled, and the next positions' blocks come from the free pool (no preemption). A row of a
// sequence that then ends (EOS) or is cancelled is computed but discarded by complete(). An ended
// sequence is kept (finished, out of every list) until the next complete() has ended, so the
// chunks of a queued step never dangle.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

#include "difftx/engine/block_pool.h"
#include "difftx/engine/engine.h"

namespace difftx::engine {

struct SchedulerLimits {
  int max_batch = 64;
  int block_size = 16;
  int max_step_tokens = 4096;
  int prefill_chunk = 512;
  int max_seq_len = 0;  // the model's context: a sequence holds at most this many tokens
  std::int32_t eos_id = 2;
};

struct Sequence {
  std::uint64_t id = 0;
  Request request;
  std::vector<std::int32_t> tokens;  // prompt, then generated tokens
  int prompt_len = 0;
  int generated = 0;                 // sampled tokens (also the sampling counter)
  int cached = 0;                    // leading tokens whose K/V are in the pool
  std::vector<std::int32_t> blocks;  // block table: blocks[t / block_size] holds token t
  std::uint64_t admitted = 0;        // admission order while running (larger = newer)
  bool running = false;
  bool cancel_requested = false;
  bool finished = false;  // ended: blocks freed, in no list; kept while steps refer to it
  int pending() const { return static_cast<int>(tokens.size()) - cached; }
};

// One sequence's rows in a step: tokens [begin, begin + length) of it, at those positions.
struct ScheduledChunk {
  Sequence* seq = nullptr;
  int begin = 0;
  int length = 0;
  bool samples = false;  // feeds the last token: its logits give the next token
  int fed_from = -1;     // >= 0: the input token is sampling row fed_from of the step before,
                         // not yet known on the host (look-ahead decode rows)
  int counter = 0;       // the sampling counter of the token it samples (tokens sampled before)
};

struct StepPlan {
  std::vector<ScheduledChunk> decode;   // length 1 each, all sampling
  std::vector<ScheduledChunk> prefill;  // one chunk per prefilling sequence
  std::vector<TokenEvent> ended;        // sequences that ended without a token (cancelled)
  int tokens() const;                   // rows of the step
  int sampled() const;                  // rows whose logits are sampled
  bool decode_only() const { return prefill.empty(); }
  bool empty() const { return decode.empty() && prefill.empty(); }
};

// One sampled row's result, in the plan's order: decode rows, then sampling prefill rows.
struct SampledToken {
  std::int32_t token = -1;
  float logprob = 0;
  std::vector<TokenLogprob> top;
};

class Scheduler {
 public:
  Scheduler(const SchedulerLimits& limits, std::int64_t num_blocks);

  // Queues a validated request; returns its id.
  std::uint64_t add(Request request);
  void cancel(std::uint64_t id);
  bool has_work() const;

  // The next step once the queued steps are complete. Not while a plan_ahead() step is queued.
  StepPlan plan();
  // The step after `in_flight` (planned, not yet completed; every earlier step completed), or an
  // empty plan when it cannot be planned before in_flight's tokens are known (see above).
  StepPlan plan_ahead(const StepPlan& in_flight);
  // Applies the plan's results (one per sampling row) and returns the token events, the plan's
  // `ended` events first. Throws difftx::Error if a token is invalid (the model produced NaN).
  std::vector<TokenEvent> complete(StepPlan& plan, const std::vector<SampledToken>& sampled);

  EngineStats stats() const;
  const SchedulerLimits& limits() const { return limits_; }
  const BlockPool& pool() const { return pool_; }
  // Blocks a sequence of `tokens` tokens needs.
  std::int64_t blocks_for(std::int64_t tokens) const;
  // Throws difftx::Error naming the first broken invariant: every block owned by at most one
  // sequence and by one iff the pool has it in use, block tables covering the cached tokens,
  // running count <= max_batch. For tests.
  void check_invariants() const;

 private:
  void preempt(Sequence& seq);
  void finish(Sequence& seq);  // frees blocks, forgets the sequence
  Sequence* newest_running();

  SchedulerLimits limits_;
  BlockPool pool_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Sequence>> sequences_;
  std::vector<std::unique_ptr<Sequence>> retired_;  // ended since the last complete() began
  std::deque<Sequence*> waiting_;                   // admission order (preempted ones at the front)
  std::vector<Sequence*> running_;                  // admission order
  std::uint64_t next_id_ = 1;
  std::uint64_t next_admission_ = 1;
  EngineStats counters_;  // prompt/generated tokens, preemptions, last batch
};

}  // namespace difftx::engine
