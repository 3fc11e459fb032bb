// Job: the per-request channel between the scheduler thread and an HTTP thread.
#include "difftx/serve/job.h"

namespace difftx::serve {

const char* abort_finish_reason(AbortReason reason) {
  return reason == AbortReason::timeout ? "timeout" : "abort";
}

Job::Job(std::vector<engine::Request> requests, Clock::time_point deadline)
    : requests_(std::move(requests)), arrival_(Clock::now()), deadline_(deadline) {}

bool Job::wait(std::vector<JobEvent>& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  cv_.wait_for(lock, timeout, [&] { return !pending_.empty() || complete_ || error_; });
  for (auto& e : pending_) out.push_back(std::move(e));
  pending_.clear();
  return !(complete_ || error_);
}

bool Job::wait_admitted(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, timeout, [&] { return admitted_ || error_; });
}

void Job::cancel_choice(int choice) {
  std::lock_guard lock(mutex_);
  cancel_requests_.push_back(choice);
}

void Job::abandon() {
  abandoned_.store(true);
}

std::optional<ApiError> Job::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

void Job::admitted() {
  {
    std::lock_guard lock(mutex_);
    admitted_ = true;
  }
  cv_.notify_all();
}

void Job::deliver(std::vector<JobEvent>&& events, bool complete) {
  {
    std::lock_guard lock(mutex_);
    for (auto& e : events) pending_.push_back(std::move(e));
    complete_ = complete_ || complete;
  }
  cv_.notify_all();
}

void Job::fail(ApiError error) {
  {
    std::lock_guard lock(mutex_);
    if (!error_) error_ = std::move(error);
  }
  cv_.notify_all();
}

std::vector<int> Job::take_cancel_requests() {
  std::lock_guard lock(mutex_);
  std::vector<int> out;
  out.swap(cancel_requests_);
  return out;
}

}  // namespace difftx::serve
