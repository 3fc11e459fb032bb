// The scheduler thread: the one owner of the token generator (the engine). HTTP threads hand
// jobs over through a bounded, thread-safe queue; between engine steps the thread admits new
// jobs (their sequences join the running batch), cancels what clients abandoned, timed out or
// what a drain must end, runs one step, and routes each token event to its job.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "difftx/serve/job.h"
#include "difftx/serve/metrics.h"
#include "difftx/serve/token_generator.h"

namespace difftx::serve {

struct SchedulerOptions {
  int max_in_flight = 64;  // sequences accepted and not finished (running + queued), at most
  std::chrono::milliseconds idle_wait{100};  // how long the idle thread sleeps between checks
};

enum class Admission { accepted, queue_full, draining };

class Scheduler {
 public:
  Scheduler(TokenGenerator& generator, ServerMetrics& metrics, SchedulerOptions options);
  ~Scheduler();  // stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  void start();
  // From any thread. queue_full when the job's sequences would exceed max_in_flight;
  // draining after begin_drain().
  Admission submit(std::shared_ptr<Job> job);
  // Stops admitting; sequences still running at `cancel_at` are cancelled (finish "abort").
  void begin_drain(Clock::time_point cancel_at);
  // Blocks until no sequence is in flight or `timeout` passes; true when idle.
  bool wait_idle(std::chrono::milliseconds timeout);
  // Ends the thread; jobs still open fail with 503.
  void stop();

  int in_flight() const { return in_flight_.load(); }
  bool draining() const { return draining_.load(); }

 private:
  struct Active {
    std::shared_ptr<Job> job;
    std::vector<std::uint64_t> sequences;  // per choice
    std::vector<bool> finished;            // per choice
    std::vector<bool> cancel_sent;         // per choice
    int remaining = 0;
  };
  struct SequenceInfo {
    Job* job = nullptr;
    int choice = 0;
    bool got_token = false;
    Clock::time_point last_token;
  };

  void run();
  void admit(std::vector<std::shared_ptr<Job>>& incoming);
  void apply_cancellations();
  void cancel_sequence(Active& active, int choice);
  bool step();  // true when an event reached a job
  void fail_all(const ApiError& error);
  void finish_choice(Active& active, int choice);
  void notify_if_idle();

  TokenGenerator& generator_;
  ServerMetrics& metrics_;
  SchedulerOptions options_;

  std::mutex mutex_;
  std::condition_variable cv_;       // new work or stop
  std::condition_variable idle_cv_;  // in_flight_ reached 0
  std::vector<std::shared_ptr<Job>> incoming_;
  bool stop_ = false;
  std::atomic<int> in_flight_{0};
  std::atomic<bool> draining_{false};
  std::atomic<std::int64_t> drain_cancel_at_{0};  // Clock ticks; valid while draining_

  // Scheduler-thread state.
  std::unordered_map<Job*, Active> active_;
  std::unordered_map<std::uint64_t, SequenceInfo> sequences_;
  std::thread thread_;
};

}  // namespace difftx::serve
