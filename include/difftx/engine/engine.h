// Engine: batched autoregressive decoding of many sequences at once over a paged KV cache — the
// inference core under `difftx generate`, `difftx bench` and `difftx serve`.
//
// Contract (the server and generate are written against exactly this):
//   - add() validates a request and queues it; sequences join the running batch between steps
//     (continuous batching). Prompts are prefilled in chunks of at most
//     EngineOptions::prefill_chunk tokens, so a long prompt does not stall the others.
//   - step() runs one scheduler step on the model's backend: prefill chunks and one decode token
//     for each running sequence, sampling on the device, and returns one TokenEvent per token
//     produced (and one per sequence that ended without a token, e.g. cancelled). With
//     EngineOptions::lookahead the next step is already queued on the device when it returns
//     (a request added then joins one step later; each sequence's tokens are those of
//     synchronous steps wherever the backend's results do not depend on the batch's make-up).
//   - KV memory: fixed blocks of EngineOptions::block_size tokens from one pool per layer,
//     handed out as sequences grow and returned when they finish or are cancelled; when the pool
//     runs dry the newest running sequence is preempted (its blocks freed, recomputed later).
//   - Sampling per sequence is seeded by its request: results do not depend on what else runs
//     in the batch (up to floating-point reassociation in batched matrix products).
//   - An EOS stop is reported by the event that carries the EOS token (finish = eos); callers
//     leave it out of the text.
//   - Not thread-safe: one thread owns the Engine (the server's scheduler thread).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "difftx/engine/sampling.h"

namespace difftx {
class Model;
}

namespace difftx::engine {

enum class FinishReason {
  none,       // still running
  length,     // max_new_tokens reached
  eos,        // the end-of-sequence token was sampled (and stop_at_eos was set)
  context,    // the model's max_seq_len was reached
  cancelled,  // cancel() was called
};
const char* finish_reason_name(FinishReason reason);

struct EngineOptions {
  int max_batch = 64;                // sequences running at once, at most
  int block_size = 16;               // tokens per KV block
  std::int64_t kv_memory_bytes = 0;  // KV pool bytes (all layers); 0: use kv_memory_fraction
  double kv_memory_fraction = 0.5;   // of free device memory (CPU: of kCpuKvMemoryDefault)
  int prefill_chunk = 512;           // prompt tokens one sequence prefills per step, at most
  int max_step_tokens = 4096;        // tokens (prefill + decode) processed in one step, at most
  bool cuda_graphs = true;           // capture the decode step per batch-size bucket (CUDA)
  bool lookahead = true;             // queue the next decode step before waiting for this one
  std::int32_t eos_id = 2;           // the end-of-sequence id (data::kEosId for difftx tokenizers)
};

inline constexpr std::int64_t kCpuKvMemoryDefault = std::int64_t(1) << 30;  // 1 GiB

struct Request {
  std::vector<std::int32_t> prompt;  // token ids, 1 .. max_seq_len - 1 of them
  int max_new_tokens = 16;           // >= 1
  SamplingConfig sampling;           // temperature 0 = greedy
  bool stop_at_eos = true;
  int top_logprobs = 0;  // 0 .. kMaxTopLogprobs alternatives per token
};

inline constexpr int kMaxTopLogprobs = 20;

struct TokenLogprob {
  std::int32_t token = 0;
  float logprob = 0;  // log-softmax of the raw logits (temperature 1, no filtering)
};

struct TokenEvent {
  std::uint64_t sequence = 0;
  std::int32_t token = -1;                   // -1: the event only reports the end
  float logprob = 0;                         // of `token`, as in TokenLogprob
  std::vector<TokenLogprob> top;             // request.top_logprobs most likely tokens
  FinishReason finish = FinishReason::none;  // set on the sequence's last event
};

struct EngineStats {
  int running = 0;  // sequences in the batch
  int waiting = 0;  // queued, not yet admitted (or preempted)
  std::int64_t kv_blocks_used = 0;
  std::int64_t kv_blocks_total = 0;
  std::int64_t live_tokens = 0;       // tokens whose K/V are held
  std::int64_t prompt_tokens = 0;     // processed since start (prefill)
  std::int64_t generated_tokens = 0;  // sampled since start
  int last_step_batch = 0;            // sequences in the last step completed
  std::int64_t preemptions = 0;
  std::int64_t lookahead_steps = 0;  // steps queued before the previous step's tokens were known
};

class Engine {
 public:
  // The model (any attention kind, any backend) must outlive the engine.
  Engine(Model& model, EngineOptions options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; returns its sequence id. Throws difftx::Error naming the problem for an
  // empty or too long prompt, an out-of-vocabulary id, max_new_tokens < 1, bad sampling or
  // top_logprobs out of range.
  std::uint64_t add(Request request);
  // Ends a queued or running sequence: its KV blocks return to the pool at the next step(),
  // which reports it with FinishReason::cancelled. Unknown or finished ids are ignored.
  void cancel(std::uint64_t sequence);
  bool has_work() const;
  std::vector<TokenEvent> step();
  EngineStats stats() const;
  const EngineOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace difftx::engine
