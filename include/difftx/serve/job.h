// A Job: one HTTP request's sequences on their way through the scheduler, and the thread-safe
// channel between the scheduler thread (which owns the engine and delivers token events) and
// the HTTP thread answering the request (which consumes them and may cancel).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <vector>

#include "difftx/engine/engine.h"
#include "difftx/serve/api_error.h"

namespace difftx::serve {

using Clock = std::chrono::steady_clock;

// Why the scheduler ended a job's sequences early.
enum class AbortReason { none, timeout, shutdown, client_gone };
// The finish reason a cancelled choice reports: "timeout" or "abort".
const char* abort_finish_reason(AbortReason reason);

struct JobEvent {
  int choice = 0;
  engine::TokenEvent event;
};

class Job {
 public:
  // One engine request per choice; `deadline`: the per-request timeout (Clock::time_point::max()
  // for none).
  Job(std::vector<engine::Request> requests, Clock::time_point deadline);

  int choice_count() const { return static_cast<int>(requests_.size()); }
  const engine::Request& request(int choice) const {
    return requests_[static_cast<std::size_t>(choice)];
  }
  Clock::time_point arrival() const { return arrival_; }
  Clock::time_point deadline() const { return deadline_; }

  // ---- HTTP thread
  // Waits up to `timeout` for news and moves delivered events into `out`. Returns false once
  // the job is over and every event was taken (finished, failed or cancelled).
  bool wait(std::vector<JobEvent>& out, std::chrono::milliseconds timeout);
  // Waits until the scheduler has admitted or failed the job; false on timeout.
  bool wait_admitted(std::chrono::milliseconds timeout);
  // The consumer is done with `choice` (stop string, end-of-text): free its sequence.
  void cancel_choice(int choice);
  // The client left: cancel every sequence.
  void abandon();
  std::optional<ApiError> error() const;
  AbortReason abort_reason() const { return abort_.load(); }

  // ---- scheduler thread
  void admitted();
  void deliver(std::vector<JobEvent>&& events, bool complete);
  void fail(ApiError error);  // ends the job: no more events
  void set_abort_reason(AbortReason reason) { abort_.store(reason); }
  bool abandoned() const { return abandoned_.load(); }
  // Choices cancelled by the consumer since the last call.
  std::vector<int> take_cancel_requests();

 private:
  std::vector<engine::Request> requests_;
  Clock::time_point arrival_;
  Clock::time_point deadline_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<JobEvent> pending_;
  std::vector<int> cancel_requests_;
  bool admitted_ = false;
  bool complete_ = false;
  std::optional<ApiError> error_;
  std::atomic<bool> abandoned_{false};
  std::atomic<AbortReason> abort_{AbortReason::none};
};

}  // namespace difftx::serve
