// The continuous-batching scheduler (see scheduler.h): admission, decode rows, prefill chunks,
// KV block allocation with preemption, and applying sampled tokens.
#include "difftx/engine/scheduler.h"

#include <algorithm>

#include "difftx/core/error.h"

namespace difftx::engine {

int StepPlan::tokens() const {
  int n = static_cast<int>(decode.size());
  for (const auto& c : prefill) n += c.length;
  return n;
}

int StepPlan::sampled() const {
  int n = static_cast<int>(decode.size());
  for (const auto& c : prefill) n += c.samples ? 1 : 0;
  return n;
}

Scheduler::Scheduler(const SchedulerLimits& limits, std::int64_t num_blocks)
    : limits_(limits), pool_(num_blocks) {
  DIFFTX_CHECK(limits_.max_batch >= 1 && limits_.block_size >= 1 && limits_.prefill_chunk >= 1 &&
                   limits_.max_step_tokens >= limits_.max_batch && limits_.max_seq_len >= 2,
               "scheduler limits: max_batch {}, block_size {}, prefill_chunk {}, max_step_tokens "
               "{}, max_seq_len {}",
               limits_.max_batch, limits_.block_size, limits_.prefill_chunk,
               limits_.max_step_tokens, limits_.max_seq_len);
}

std::int64_t Scheduler::blocks_for(std::int64_t tokens) const {
  return (tokens + limits_.block_size - 1) / limits_.block_size;
}

std::uint64_t Scheduler::add(Request request) {
  auto seq = std::make_unique<Sequence>();
  seq->id = next_id_++;
  seq->tokens = request.prompt;
  seq->prompt_len = static_cast<int>(request.prompt.size());
  seq->request = std::move(request);
  waiting_.push_back(seq.get());
  const std::uint64_t id = seq->id;
  sequences_.emplace(id, std::move(seq));
  return id;
}

void Scheduler::cancel(std::uint64_t id) {
  auto it = sequences_.find(id);
  if (it != sequences_.end()) it->second->cancel_requested = true;
}

bool Scheduler::has_work() const {
  return !sequences_.empty();
}

Sequence* Scheduler::newest_running() {
  return running_.empty() ? nullptr : running_.back();
}

void Scheduler::preempt(Sequence& seq) {
  pool_.release(seq.blocks);
  seq.cached = 0;
  seq.running = false;
  running_.erase(std::find(running_.begin(), running_.end(), &seq));
  waiting_.push_front(&seq);
  ++counters_.preemptions;
}

void Scheduler::finish(Sequence& seq) {
  pool_.release(seq.blocks);
  if (seq.running) {
    running_.erase(std::find(running_.begin(), running_.end(), &seq));
  } else {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), &seq));
  }
  seq.running = false;
  seq.finished = true;
  auto it = sequences_.find(seq.id);
  retired_.push_back(std::move(it->second));  // a queued step may still name it
  sequences_.erase(it);
}

StepPlan Scheduler::plan() {
  StepPlan plan;
  // 1. Cancellations end here, with an event and no token.
  std::vector<Sequence*> cancelled;
  for (Sequence* s : running_) {
    if (s->cancel_requested) cancelled.push_back(s);
  }
  for (Sequence* s : waiting_) {
    if (s->cancel_requested) cancelled.push_back(s);
  }
  for (Sequence* s : cancelled) {
    TokenEvent e;
    e.sequence = s->id;
    e.finish = FinishReason::cancelled;
    plan.ended.push_back(std::move(e));
    finish(*s);
  }

  // 2. Decode rows for running sequences with one token to feed; a block for its position.
  bool preempted = false;
  for (std::size_t i = 0; i < running_.size(); ++i) {
    Sequence* s = running_[i];
    if (s->pending() != 1) continue;
    bool dropped = false;
    while (static_cast<std::int64_t>(s->blocks.size()) * limits_.block_size <= s->cached) {
      if (pool_.free() == 0) {
        Sequence* victim = newest_running();
        preempt(*victim);
        preempted = true;
        if (victim == s) {
          dropped = true;
          break;
        }
        continue;
      }
      s->blocks.push_back(pool_.allocate());
    }
    if (dropped) break;  // s was the newest: nothing runs after it
    plan.decode.push_back({s, s->cached, 1, true});
  }

  // 3. Admission (oldest first) while the batch has room and the pool holds the whole prefix.
  const std::size_t admitted_before = running_.size();
  if (!preempted) {
    const std::int64_t watermark = pool_.total() / 100;
    while (!waiting_.empty() && static_cast<int>(running_.size()) < limits_.max_batch) {
      Sequence* s = waiting_.front();
      const std::int64_t need = blocks_for(static_cast<std::int64_t>(s->tokens.size()));
      if (pool_.free() < need + (running_.empty() ? 0 : watermark)) break;
      for (std::int64_t b = 0; b < need; ++b) s->blocks.push_back(pool_.allocate());
      s->running = true;
      s->admitted = next_admission_++;
      waiting_.pop_front();
      running_.push_back(s);
    }
  }

  // 4. Prefill chunks (and decode rows of sequences admitted with a one-token prompt).
  int budget = limits_.max_step_tokens - static_cast<int>(plan.decode.size());
  for (std::size_t i = 0; i < running_.size() && budget > 0; ++i) {
    Sequence* s = running_[i];
    const int pending = s->pending();
    if (pending == 1) {
      if (i < admitted_before) continue;  // already a decode row
      plan.decode.push_back({s, s->cached, 1, true});
      budget -= 1;
      continue;
    }
    const int chunk = std::min({pending, limits_.prefill_chunk, budget});
    plan.prefill.push_back({s, s->cached, chunk, chunk == pending});
    budget -= chunk;
  }
  for (auto& c : plan.decode) c.counter = c.seq->generated;
  for (auto& c : plan.prefill) c.counter = c.seq->generated;
  return plan;
}

StepPlan Scheduler::plan_ahead(const StepPlan& in_flight) {
  // After in_flight's token a sequence has generated + 1 tokens of tokens.size() + 1: whether that
  // ends it by length or context is known now (an EOS end is not).
  auto ends_with = [&](const Sequence& s) {
    return s.generated + 1 >= s.request.max_new_tokens ||
           static_cast<int>(s.tokens.size()) + 1 >= limits_.max_seq_len;
  };
  StepPlan next;
  if (in_flight.empty() || !in_flight.decode_only() || !waiting_.empty()) return next;
  // in_flight's rows of running sequences are running_ in order (a sequence that ended since is
  // out of running_): every running sequence must have one, so that nothing plan() would admit,
  // prefill or end is skipped.
  std::vector<int> rows;  // row of in_flight per running sequence
  std::size_t r = 0;
  for (std::size_t i = 0; i < in_flight.decode.size() && r < running_.size(); ++i) {
    if (in_flight.decode[i].seq == running_[r]) {
      rows.push_back(static_cast<int>(i));
      ++r;
    }
  }
  if (r != running_.size()) return next;
  // The next rows (a sequence that in_flight ends by length or context has none), and whether
  // each position starts a block.
  struct Next {
    Sequence* seq;
    int row, position;
    bool new_block;
  };
  std::vector<Next> wanted;
  std::int64_t blocks_needed = 0;
  for (std::size_t i = 0; i < running_.size(); ++i) {
    Sequence* s = running_[i];
    const ScheduledChunk& c = in_flight.decode[static_cast<std::size_t>(rows[i])];
    if (s->cancel_requested || c.begin != s->cached) return next;
    if (ends_with(*s)) continue;
    const int position = c.begin + 1;
    const bool new_block =
        static_cast<std::int64_t>(s->blocks.size()) * limits_.block_size <= position;
    blocks_needed += new_block ? 1 : 0;
    wanted.push_back({s, rows[i], position, new_block});
  }
  if (blocks_needed > pool_.free()) return next;  // plan() would preempt: not ahead of time
  for (const Next& w : wanted) {
    if (w.new_block) w.seq->blocks.push_back(pool_.allocate());
    ScheduledChunk row{w.seq, w.position, 1, true};
    row.fed_from = w.row;
    row.counter = w.seq->generated + 1;
    next.decode.push_back(row);
  }
  if (!next.decode.empty()) ++counters_.lookahead_steps;
  return next;
}

std::vector<TokenEvent> Scheduler::complete(StepPlan& plan,
                                            const std::vector<SampledToken>& sampled) {
  DIFFTX_CHECK(static_cast<int>(sampled.size()) == plan.sampled(),
               "scheduler: {} sampled tokens for a step with {} sampling rows", sampled.size(),
               plan.sampled());
  // Sequences that ended before this step completes: no queued step names them after it.
  const std::vector<std::unique_ptr<Sequence>> ended_before = std::move(retired_);
  retired_.clear();
  std::vector<TokenEvent> events = std::move(plan.ended);
  std::size_t k = 0;
  auto apply = [&](ScheduledChunk& c) {
    Sequence* s = c.seq;
    if (s->finished || s->cancel_requested) {
      // A row of a sequence that ended (EOS) or was cancelled after the step was queued:
      // computed, discarded. A cancelled sequence ends at the next plan(), with no token.
      if (c.samples) ++k;
      return;
    }
    DIFFTX_CHECK(c.begin == s->cached, "scheduler: sequence {} has {} tokens cached, a chunk at {}",
                 s->id, s->cached, c.begin);
    s->cached += c.length;
    counters_.prompt_tokens += std::max(0, std::min(c.begin + c.length, s->prompt_len) - c.begin);
    if (!c.samples) return;
    const SampledToken& r = sampled[k++];
    if (r.token < 0) {
      fail(
          "the model produced invalid logits (NaN or infinite) for sequence {} at position {}: "
          "check the checkpoint and the input tokens",
          s->id, s->tokens.size() - 1);
    }
    s->tokens.push_back(r.token);
    ++s->generated;
    ++counters_.generated_tokens;
    TokenEvent e;
    e.sequence = s->id;
    e.token = r.token;
    e.logprob = r.logprob;
    const std::size_t top = std::min<std::size_t>(r.top.size(), s->request.top_logprobs);
    e.top.assign(r.top.begin(), r.top.begin() + static_cast<std::ptrdiff_t>(top));
    if (s->request.stop_at_eos && r.token == limits_.eos_id) {
      e.finish = FinishReason::eos;
    } else if (s->generated >= s->request.max_new_tokens) {
      e.finish = FinishReason::length;
    } else if (static_cast<int>(s->tokens.size()) >= limits_.max_seq_len) {
      e.finish = FinishReason::context;
    }
    events.push_back(std::move(e));
    if (events.back().finish != FinishReason::none) finish(*s);
  };
  counters_.last_step_batch = static_cast<int>(plan.decode.size() + plan.prefill.size());
  for (auto& c : plan.decode) apply(c);
  for (auto& c : plan.prefill) apply(c);
  plan.decode.clear();
  plan.prefill.clear();
  return events;
}

EngineStats Scheduler::stats() const {
  EngineStats s = counters_;
  s.running = static_cast<int>(running_.size());
  s.waiting = static_cast<int>(waiting_.size());
  s.kv_blocks_used = pool_.used();
  s.kv_blocks_total = pool_.total();
  s.live_tokens = 0;
  for (const Sequence* q : running_) s.live_tokens += q->cached;
  return s;
}

void Scheduler::check_invariants() const {
  DIFFTX_CHECK(sequences_.size() == running_.size() + waiting_.size(),
               "scheduler: {} sequences but {} running + {} waiting", sequences_.size(),
               running_.size(), waiting_.size());
  DIFFTX_CHECK(static_cast<int>(running_.size()) <= limits_.max_batch,
               "scheduler: {} running, max_batch {}", running_.size(), limits_.max_batch);
  std::vector<char> seen(static_cast<std::size_t>(pool_.total()), 0);
  std::int64_t owned = 0;
  for (const auto& [id, s] : sequences_) {
    if (!s->running) {
      DIFFTX_CHECK(s->blocks.empty() && s->cached == 0,
                   "scheduler: queued sequence {} holds {} blocks, {} cached tokens", id,
                   s->blocks.size(), s->cached);
    }
    DIFFTX_CHECK(s->cached >= 0 && s->cached <= static_cast<int>(s->tokens.size()),
                 "scheduler: sequence {} has {} cached of {} tokens", id, s->cached,
                 s->tokens.size());
    if (s->running) {
      const auto held = static_cast<std::int64_t>(s->blocks.size());
      DIFFTX_CHECK(held >= blocks_for(s->cached) &&
                       held <= blocks_for(static_cast<std::int64_t>(s->tokens.size())),
                   "scheduler: sequence {} holds {} blocks for {} cached of {} tokens", id, held,
                   s->cached, s->tokens.size());
    }
    for (std::int32_t b : s->blocks) {
      DIFFTX_CHECK(b >= 0 && b < pool_.total(),
                   "scheduler: sequence {} holds block {} outside "
                   "the pool",
                   id, b);
      DIFFTX_CHECK(!seen[static_cast<std::size_t>(b)], "scheduler: block {} held twice", b);
      DIFFTX_CHECK(pool_.in_use(b), "scheduler: block {} held by sequence {} but free", b, id);
      seen[static_cast<std::size_t>(b)] = 1;
      ++owned;
    }
  }
  DIFFTX_CHECK(owned == pool_.used(), "scheduler: sequences hold {} blocks, the pool has {} in use",
               owned, pool_.used());
}

}  // namespace difftx::engine
