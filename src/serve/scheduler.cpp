// Scheduler: the thread that owns the engine, admitting, cancelling, stepping and routing.
#include "difftx/serve/scheduler.h"

#include <fmt/format.h>

#include "difftx/core/error.h"

namespace difftx::serve {

Scheduler::Scheduler(TokenGenerator& generator, ServerMetrics& metrics, SchedulerOptions options)
    : generator_(generator), metrics_(metrics), options_(options) {
  DIFFTX_CHECK(options_.max_in_flight >= 1, "scheduler: max_in_flight must be >= 1, got {}",
               options_.max_in_flight);
}

Scheduler::~Scheduler() {
  stop();
}

void Scheduler::start() {
  DIFFTX_CHECK(!thread_.joinable(), "scheduler: started twice");
  thread_ = std::thread([this] { run(); });
}

Admission Scheduler::submit(std::shared_ptr<Job> job) {
  if (draining_.load()) return Admission::draining;
  const int n = job->choice_count();
  int current = in_flight_.load();
  do {
    if (current + n > options_.max_in_flight) return Admission::queue_full;
  } while (!in_flight_.compare_exchange_weak(current, current + n));
  {
    std::lock_guard lock(mutex_);
    if (stop_) {
      in_flight_ -= n;
      return Admission::draining;
    }
    incoming_.push_back(std::move(job));
  }
  cv_.notify_one();
  return Admission::accepted;
}

void Scheduler::begin_drain(Clock::time_point cancel_at) {
  drain_cancel_at_.store(cancel_at.time_since_epoch().count());
  draining_.store(true);
  cv_.notify_one();
}

bool Scheduler::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return idle_cv_.wait_for(lock, timeout, [&] { return in_flight_.load() == 0; });
}

void Scheduler::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
  ApiError e;
  e.status = 503;
  e.type = "server_error";
  e.message = "the server is shutting down; retry against a running server";
  e.code = "server_shutdown";
  fail_all(e);
  std::vector<std::shared_ptr<Job>> left;
  {
    std::lock_guard lock(mutex_);
    left.swap(incoming_);
  }
  for (auto& job : left) {
    job->fail(e);
    in_flight_ -= job->choice_count();
  }
  notify_if_idle();
}

void Scheduler::run() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    if (incoming_.empty() && active_.empty() && !generator_.has_work()) {
      cv_.wait_for(lock, options_.idle_wait);
      continue;
    }
    std::vector<std::shared_ptr<Job>> incoming;
    incoming.swap(incoming_);
    lock.unlock();
    admit(incoming);
    apply_cancellations();
    if (generator_.has_work() || !active_.empty()) {
      const bool routed = step();
      if (!routed && !active_.empty() && !generator_.has_work()) {
        // Every open sequence must keep the generator busy until it reports its end.
        ApiError e;
        e.status = 500;
        e.type = "server_error";
        e.message = "the engine dropped a sequence without reporting its end";
        fail_all(e);
      }
    }
    metrics_.set_engine_state(generator_.stats(), 0);
    lock.lock();
  }
}

void Scheduler::admit(std::vector<std::shared_ptr<Job>>& incoming) {
  for (auto& job : incoming) {
    Active active;
    active.job = job;
    const int n = job->choice_count();
    active.sequences.assign(static_cast<std::size_t>(n), 0);
    active.finished.assign(static_cast<std::size_t>(n), false);
    active.cancel_sent.assign(static_cast<std::size_t>(n), false);
    int added = 0;
    std::optional<ApiError> refused;
    for (int c = 0; c < n && !refused; ++c) {
      try {
        active.sequences[static_cast<std::size_t>(c)] = generator_.add(job->request(c));
        ++added;
      } catch (const Error& e) {
        refused = invalid_request(fmt::format("the engine refused the request: {}", e.what()));
      } catch (const std::exception& e) {
        ApiError err;
        err.status = 500;
        err.type = "server_error";
        err.message = fmt::format("the engine failed to queue the request: {}", e.what());
        refused = err;
      }
    }
    if (refused) {
      // Sequences already queued are cancelled; their end events find no job and are dropped.
      for (int c = 0; c < added; ++c)
        generator_.cancel(active.sequences[static_cast<std::size_t>(c)]);
      job->fail(*refused);
      in_flight_ -= n;
      notify_if_idle();
      continue;
    }
    std::int64_t prompt_tokens = 0;
    for (int c = 0; c < n; ++c) {
      sequences_[active.sequences[static_cast<std::size_t>(c)]] =
          SequenceInfo{job.get(), c, false, {}};
      prompt_tokens += static_cast<std::int64_t>(job->request(c).prompt.size());
    }
    metrics_.add_prompt_tokens(prompt_tokens);
    active.remaining = n;
    Job* key = job.get();
    active_.emplace(key, std::move(active));
    job->admitted();
  }
}

void Scheduler::cancel_sequence(Active& active, int choice) {
  const auto c = static_cast<std::size_t>(choice);
  if (choice < 0 || c >= active.sequences.size() || active.finished[c] || active.cancel_sent[c])
    return;
  active.cancel_sent[c] = true;
  generator_.cancel(active.sequences[c]);
}

void Scheduler::apply_cancellations() {
  const auto now = Clock::now();
  const bool drain_due =
      draining_.load() && now.time_since_epoch().count() >= drain_cancel_at_.load();
  for (auto& [key, active] : active_) {
    Job& job = *active.job;
    AbortReason reason = AbortReason::none;
    if (job.abandoned())
      reason = AbortReason::client_gone;
    else if (now >= job.deadline())
      reason = AbortReason::timeout;
    else if (drain_due)
      reason = AbortReason::shutdown;
    if (reason != AbortReason::none) {
      if (job.abort_reason() == AbortReason::none) {
        job.set_abort_reason(reason);
        if (reason == AbortReason::client_gone) metrics_.count_disconnect();
        if (reason == AbortReason::timeout) metrics_.count_timeout();
      }
      for (int c = 0; c < job.choice_count(); ++c) cancel_sequence(active, c);
      continue;
    }
    for (int c : job.take_cancel_requests()) cancel_sequence(active, c);
  }
}

void Scheduler::finish_choice(Active& active, int choice) {
  const auto c = static_cast<std::size_t>(choice);
  if (active.finished[c]) return;
  active.finished[c] = true;
  sequences_.erase(active.sequences[c]);
  active.remaining -= 1;
  in_flight_ -= 1;
}

bool Scheduler::step() {
  std::vector<engine::TokenEvent> events;
  try {
    events = generator_.step();
  } catch (const std::exception& e) {
    ApiError err;
    err.status = 500;
    err.type = "server_error";
    err.message = fmt::format("the engine failed during a step: {}", e.what());
    fail_all(err);
    return true;
  }
  const auto now = Clock::now();
  metrics_.observe_step(generator_.stats().last_step_batch);
  std::unordered_map<Job*, std::vector<JobEvent>> routed;
  std::int64_t tokens = 0;
  for (auto& event : events) {
    auto it = sequences_.find(event.sequence);
    if (it == sequences_.end()) continue;  // a sequence of a failed job
    SequenceInfo& info = it->second;
    Job* job = info.job;
    const int choice = info.choice;
    if (event.token >= 0) {
      ++tokens;
      if (!info.got_token) {
        metrics_.observe_time_to_first_token(
            std::chrono::duration<double>(now - job->arrival()).count());
        info.got_token = true;
      } else {
        metrics_.observe_inter_token_latency(
            std::chrono::duration<double>(now - info.last_token).count());
      }
      info.last_token = now;
    }
    const bool last = event.finish != engine::FinishReason::none;
    routed[job].push_back(JobEvent{choice, std::move(event)});
    if (last) finish_choice(active_.at(job), choice);
  }
  metrics_.add_generated_tokens(tokens);
  for (auto& [job, list] : routed) {
    auto it = active_.find(job);
    const bool complete = it->second.remaining == 0;
    job->deliver(std::move(list), complete);
    if (complete) {
      metrics_.observe_request_duration(
          std::chrono::duration<double>(now - job->arrival()).count());
      active_.erase(it);
    }
  }
  notify_if_idle();
  return !routed.empty();
}

void Scheduler::notify_if_idle() {
  if (in_flight_.load() != 0) return;
  std::lock_guard lock(mutex_);
  idle_cv_.notify_all();
}

void Scheduler::fail_all(const ApiError& error) {
  for (auto& [key, active] : active_) {
    for (int c = 0; c < active.job->choice_count(); ++c) {
      const auto i = static_cast<std::size_t>(c);
      if (!active.finished[i]) {
        if (!active.cancel_sent[i]) {
          try {
            generator_.cancel(active.sequences[i]);
          } catch (const std::exception&) {
            // The engine is already broken; the job fails below either way.
          }
        }
        finish_choice(active, c);
      }
    }
    active.job->fail(error);
  }
  active_.clear();
  notify_if_idle();
}

}  // namespace difftx::serve
