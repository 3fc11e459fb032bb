// Engine (see engine.h): option and request validation, the KV memory budget, and the step
// loop tying the scheduler (host policy) to the step runner (device work).
#include "difftx/engine/engine.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <utility>

#include "difftx/core/error.h"
#include "difftx/engine/scheduler.h"
#include "difftx/model/model.h"
#include "step_runner.h"

namespace difftx::engine {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::none:
      return "none";
    case FinishReason::length:
      return "length";
    case FinishReason::eos:
      return "eos";
    case FinishReason::context:
      return "context";
    case FinishReason::cancelled:
      return "cancelled";
  }
  return "?";
}

namespace {

void validate_options(const EngineOptions& o, const ModelConfig& c) {
  if (o.max_batch < 1 || o.max_batch > 4096) {
    fail("engine: max_batch must be in [1, 4096], got {}", o.max_batch);
  }
  if (o.block_size < 1 || o.block_size > 1024) {
    fail("engine: block_size must be in [1, 1024] tokens, got {}", o.block_size);
  }
  if (o.kv_memory_bytes < 0) {
    fail("engine: kv_memory_bytes must be >= 0 (0: use kv_memory_fraction), got {}",
         o.kv_memory_bytes);
  }
  if (o.kv_memory_bytes == 0 && !(o.kv_memory_fraction > 0 && o.kv_memory_fraction <= 1)) {
    fail("engine: kv_memory_fraction must be in (0, 1], got {}", o.kv_memory_fraction);
  }
  if (o.prefill_chunk < 1) fail("engine: prefill_chunk must be >= 1, got {}", o.prefill_chunk);
  if (o.max_step_tokens < o.max_batch) {
    fail(
        "engine: max_step_tokens ({}) must be >= max_batch ({}) so every running sequence can "
        "decode in one step",
        o.max_step_tokens, o.max_batch);
  }
  if (o.eos_id < 0 || o.eos_id >= c.vocab_size) {
    fail("engine: eos_id {} is outside the model's vocabulary [0, {})", o.eos_id, c.vocab_size);
  }
  if (c.max_seq_len < 2)
    fail("engine: the model's max_seq_len {} leaves no room to generate", c.max_seq_len);
}

// KV blocks the budget pays for, capped at what max_batch full-length sequences could use.
std::int64_t kv_block_count(Model& model, const EngineOptions& o, int blocks_per_seq) {
  Backend& backend = model.backend();
  const std::int64_t per_block =
      PagedKvCache::block_bytes(model.config(), backend.act_dtype(), o.block_size);
  std::int64_t budget = o.kv_memory_bytes;
  if (budget == 0) {
    const std::int64_t free = backend.free_device_memory();
    const std::int64_t base = free >= 0 ? free : kCpuKvMemoryDefault;
    budget = static_cast<std::int64_t>(std::floor(o.kv_memory_fraction * double(base)));
  }
  const std::int64_t blocks = budget / per_block;
  if (blocks < 1) {
    fail(
        "engine: the KV memory budget of {} bytes holds no KV block ({} bytes: {} tokens over {} "
        "layers); raise kv_memory_bytes or kv_memory_fraction",
        budget, per_block, o.block_size, model.config().n_layers);
  }
  // At most max_batch full-length sequences plus the scheduler's admission watermark (1% of the
  // pool): a pool of exactly max_batch full sequences kept the last one waiting (its prompt's
  // blocks plus the watermark never fit), which the 32 x 32K benchmark case showed.
  const std::int64_t full = std::int64_t(o.max_batch) * blocks_per_seq;
  return std::min<std::int64_t>(blocks, full + full / 99 + 1);
}

}  // namespace

struct Engine::Impl {
  Model& model;
  EngineOptions options;
  std::unique_ptr<StepRunner> runner;
  std::unique_ptr<Scheduler> scheduler;
  StepPlan queued;  // the plan of the oldest step queued on the device and not yet completed
  // An error of queuing the next step after a step's tokens were applied: those tokens are
  // returned first, the error by the next step().
  std::exception_ptr deferred_error;

  Impl(Model& m, const EngineOptions& o) : model(m), options(o) {}

  // Plans a step now that every queued step is complete and queues it; the plan's ended
  // (cancelled) sequences are reported at once.
  void queue_next(std::vector<TokenEvent>& events) {
    queued = scheduler->plan();
    for (TokenEvent& e : queued.ended) events.push_back(std::move(e));
    queued.ended.clear();
    if (!queued.empty()) runner->submit(queued);
  }

  // Waits for the oldest queued step, after queuing the one after it when its rows are known
  // without its tokens (look-ahead), and applies its tokens.
  void complete_oldest(std::vector<TokenEvent>& events) {
    StepPlan next = options.lookahead ? scheduler->plan_ahead(queued) : StepPlan{};
    if (!next.empty()) runner->submit(next);
    const std::vector<SampledToken> sampled = runner->collect();
    for (TokenEvent& e : scheduler->complete(queued, sampled)) events.push_back(std::move(e));
    queued = std::move(next);
  }
};

Engine::Engine(Model& model, EngineOptions options) {
  validate_options(options, model.config());
  impl_ = std::make_unique<Impl>(model, options);
  impl_->runner = std::make_unique<StepRunner>(model, options);
  const int per_seq =
      StepRunner::blocks_per_sequence(model.config().max_seq_len, options.block_size);
  const std::int64_t blocks = kv_block_count(model, options, per_seq);
  impl_->runner->allocate_kv(blocks);
  SchedulerLimits limits;
  limits.max_batch = options.max_batch;
  limits.block_size = options.block_size;
  limits.max_step_tokens = options.max_step_tokens;
  limits.prefill_chunk = options.prefill_chunk;
  limits.max_seq_len = model.config().max_seq_len;
  limits.eos_id = options.eos_id;
  impl_->scheduler = std::make_unique<Scheduler>(limits, blocks);
}

Engine::~Engine() = default;

std::uint64_t Engine::add(Request request) {
  const ModelConfig& c = impl_->model.config();
  const auto n = static_cast<std::int64_t>(request.prompt.size());
  if (n == 0) fail("request: the prompt is empty; give at least one token");
  if (n > c.max_seq_len - 1) {
    fail(
        "request: the prompt has {} tokens; the model's context (max_seq_len) is {}, which "
        "leaves room for at most {} prompt tokens: shorten it",
        n, c.max_seq_len, c.max_seq_len - 1);
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int32_t id = request.prompt[static_cast<std::size_t>(i)];
    if (id < 0 || id >= c.vocab_size) {
      fail("request: prompt token {} is id {}, outside the vocabulary [0, {})", i, id,
           c.vocab_size);
    }
  }
  if (request.max_new_tokens < 1) {
    fail("request: max_new_tokens must be >= 1, got {}", request.max_new_tokens);
  }
  validate_sampling(request.sampling, "request");
  if (request.top_logprobs < 0 || request.top_logprobs > kMaxTopLogprobs) {
    fail("request: top_logprobs must be in [0, {}], got {}", kMaxTopLogprobs, request.top_logprobs);
  }
  const Scheduler& s = *impl_->scheduler;
  const std::int64_t longest = std::min<std::int64_t>(n + request.max_new_tokens, c.max_seq_len);
  if (s.blocks_for(longest) > s.pool().total()) {
    fail(
        "request: {} prompt tokens + up to {} new ones need {} KV blocks but the whole pool has "
        "{}; raise the engine's KV memory or ask for fewer tokens",
        n, request.max_new_tokens, s.blocks_for(longest), s.pool().total());
  }
  return impl_->scheduler->add(std::move(request));
}

void Engine::cancel(std::uint64_t sequence) {
  impl_->scheduler->cancel(sequence);
}

bool Engine::has_work() const {
  return impl_->scheduler->has_work();
}

// One step's tokens per call. With look-ahead a step is queued on the device when step() returns
// (planned ahead, or planned with every token known), so the device works while the caller
// handles the events; a step() waits for that step and queues the next before waiting.
std::vector<TokenEvent> Engine::step() {
  Impl& m = *impl_;
  Scheduler& s = *m.scheduler;
  std::vector<TokenEvent> events;
  auto abandon_queued = [&] {
    m.queued = StepPlan{};
    m.runner->drop_queued();
  };
  if (m.deferred_error) {
    std::rethrow_exception(std::exchange(m.deferred_error, nullptr));
  }
  try {
    if (m.runner->queued() == 0) {
      if (!s.has_work()) return {};
      m.queue_next(events);
      if (m.runner->queued() == 0) return events;  // only cancellations ended
    }
    m.complete_oldest(events);
  } catch (...) {
    abandon_queued();
    throw;
  }
  // Tokens are applied now: a failure to queue the next step must not lose them. (When every
  // sequence has ended, a queued look-ahead step of discarded rows stays queued: the next step()
  // or the engine's end waits for it.)
  if (m.options.lookahead && m.runner->queued() == 0 && s.has_work()) {
    try {
      m.queue_next(events);
    } catch (...) {
      abandon_queued();
      m.deferred_error = std::current_exception();
    }
  }
  return events;
}

EngineStats Engine::stats() const {
  return impl_->scheduler->stats();
}

const EngineOptions& Engine::options() const {
  return impl_->options;
}

}  // namespace difftx::engine
