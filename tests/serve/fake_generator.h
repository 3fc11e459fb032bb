// A scripted TokenGenerator for the server tests (a test double, never part of the product):
// each sequence emits deterministic token ids derived from its prompt, seed and position,
// honours max_new_tokens, stop_at_eos, cancel() and a batch limit, optionally sleeps per
// step (so that tests can act mid-generation), and records what the scheduler asked of it.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "difftx/core/error.h"
#include "difftx/serve/token_generator.h"

namespace difftx::serve::testing {

struct FakeGeneratorOptions {
  int vocab_size = 320;
  int max_batch = 8;
  int context = 64;
  std::int32_t first_token = 261;  // tokens are drawn from [first_token, vocab_size)
  std::int32_t eos = 2;
  int eos_after = -1;  // >= 0: emit eos as the (eos_after+1)-th token
  std::chrono::milliseconds step_delay{0};
  bool throw_on_step = false;  // step() throws (an engine failure)
};

class FakeGenerator final : public TokenGenerator {
 public:
  explicit FakeGenerator(FakeGeneratorOptions options = {})
      : o_(options), delay_ms_(int(options.step_delay.count())), throw_(options.throw_on_step) {}

  // The token a sequence with this prompt and seed emits at generation position `i`.
  static std::int32_t token_at(const engine::Request& r, int i, const FakeGeneratorOptions& o) {
    std::uint64_t h =
        1469598103934665603ULL ^ r.sampling.seed * (r.sampling.temperature > 0 ? 1 : 0);
    for (auto id : r.prompt) h = (h ^ std::uint64_t(id)) * 1099511628211ULL;
    h = (h ^ std::uint64_t(i)) * 1099511628211ULL;
    h ^= h >> 29;
    return o.first_token +
           static_cast<std::int32_t>(h % std::uint64_t(o.vocab_size - o.first_token));
  }

  std::uint64_t add(engine::Request request) override {
    if (request.prompt.empty() || int(request.prompt.size()) >= o_.context) {
      fail("prompt of {} tokens does not fit the context {}", request.prompt.size(), o_.context);
    }
    if (request.max_new_tokens < 1) fail("max_new_tokens must be >= 1");
    std::lock_guard lock(mutex_);
    const std::uint64_t id = next_id_++;
    waiting_.push_back(id);
    seqs_[id] = Seq{std::move(request), 0, false};
    added_ += 1;
    return id;
  }

  void cancel(std::uint64_t sequence) override {
    std::lock_guard lock(mutex_);
    if (seqs_.count(sequence)) {
      seqs_[sequence].cancelled = true;
      cancelled_.insert(sequence);
    }
  }

  bool has_work() const override {
    std::lock_guard lock(mutex_);
    return !seqs_.empty();
  }

  std::vector<engine::TokenEvent> step() override {
    if (delay_ms_.load() > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_.load()));
    if (throw_.load()) throw std::runtime_error("injected engine failure");
    std::lock_guard lock(mutex_);
    std::vector<engine::TokenEvent> events;
    // Cancelled sequences (running or waiting) end first.
    for (auto it = seqs_.begin(); it != seqs_.end();) {
      if (it->second.cancelled) {
        engine::TokenEvent e;
        e.sequence = it->first;
        e.finish = engine::FinishReason::cancelled;
        events.push_back(e);
        running_.erase(std::remove(running_.begin(), running_.end(), it->first), running_.end());
        waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), it->first), waiting_.end());
        it = seqs_.erase(it);
      } else {
        ++it;
      }
    }
    while (int(running_.size()) < o_.max_batch && !waiting_.empty()) {
      running_.push_back(waiting_.front());
      waiting_.pop_front();
    }
    last_batch_ = int(running_.size());
    max_batch_seen_ = std::max(max_batch_seen_.load(), last_batch_);
    for (auto it = running_.begin(); it != running_.end();) {
      Seq& s = seqs_[*it];
      engine::TokenEvent e;
      e.sequence = *it;
      e.token = (o_.eos_after >= 0 && s.produced == o_.eos_after)
                    ? o_.eos
                    : token_at(s.request, s.produced, o_);
      e.logprob = -0.5f - 0.01f * float(s.produced);
      for (int k = 0; k < s.request.top_logprobs; ++k) {
        e.top.push_back({o_.first_token + k, -0.25f * float(k + 1)});
      }
      s.produced += 1;
      if (s.request.stop_at_eos && e.token == o_.eos)
        e.finish = engine::FinishReason::eos;
      else if (s.produced >= s.request.max_new_tokens)
        e.finish = engine::FinishReason::length;
      else if (int(s.request.prompt.size()) + s.produced >= o_.context)
        e.finish = engine::FinishReason::context;
      events.push_back(e);
      generated_ += 1;
      if (e.finish != engine::FinishReason::none) {
        seqs_.erase(*it);
        it = running_.erase(it);
      } else {
        ++it;
      }
    }
    steps_ += 1;
    return events;
  }

  engine::EngineStats stats() const override {
    std::lock_guard lock(mutex_);
    engine::EngineStats s;
    s.running = int(running_.size());
    s.waiting = int(waiting_.size());
    s.kv_blocks_used = int(seqs_.size());
    s.kv_blocks_total = 1000;
    s.generated_tokens = generated_;
    s.last_step_batch = last_batch_;
    return s;
  }

  // Observations for the tests.
  std::set<std::uint64_t> cancelled() const {
    std::lock_guard lock(mutex_);
    return cancelled_;
  }
  int open_sequences() const {
    std::lock_guard lock(mutex_);
    return int(seqs_.size());
  }
  int added() const { return added_.load(); }
  int max_batch_seen() const { return max_batch_seen_.load(); }
  int steps() const { return steps_.load(); }
  void set_step_delay(std::chrono::milliseconds d) { delay_ms_ = int(d.count()); }
  void set_throw_on_step(bool on) { throw_ = on; }
  const FakeGeneratorOptions& options() const { return o_; }

 private:
  struct Seq {
    engine::Request request;
    int produced = 0;
    bool cancelled = false;
  };
  FakeGeneratorOptions o_;  // fixed after construction except through the atomics below
  std::atomic<int> delay_ms_;
  std::atomic<bool> throw_;
  mutable std::mutex mutex_;
  std::map<std::uint64_t, Seq> seqs_;
  std::deque<std::uint64_t> waiting_;
  std::vector<std::uint64_t> running_;
  std::set<std::uint64_t> cancelled_;
  std::uint64_t next_id_ = 1;
  std::int64_t generated_ = 0;
  int last_batch_ = 0;
  std::atomic<int> added_{0}, max_batch_seen_{0}, steps_{0};
};

}  // namespace difftx::serve::testing
