// The server's Prometheus metrics (GET /metrics, text exposition format 0.0.4): requests by
// endpoint and status, prompt and generated tokens, queue depth, running sequences, batch size,
// KV blocks, and histograms of time to first token, inter-token latency, request duration and
// batch size. Thread-safe: HTTP threads and the scheduler thread update it concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "difftx/engine/engine.h"

namespace difftx::serve {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);  // increasing; +Inf is implicit
  void observe(double value);
  // "# HELP", "# TYPE" and the _bucket / _sum / _count lines.
  void render(std::string& out, const std::string& name, const std::string& help) const;
  std::uint64_t count() const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mutex_;
  std::vector<std::uint64_t> counts_;  // per bucket (not cumulative), last = +Inf
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();

  void count_request(const std::string& endpoint, int status);
  void add_prompt_tokens(std::int64_t n) { prompt_tokens_ += n; }
  void add_generated_tokens(std::int64_t n) { generated_tokens_ += n; }
  void observe_time_to_first_token(double seconds) { ttft_.observe(seconds); }
  void observe_inter_token_latency(double seconds) { itl_.observe(seconds); }
  void observe_request_duration(double seconds) { duration_.observe(seconds); }
  void observe_step(int batch_size);  // one engine step with `batch_size` sequences
  // Engine state after a step (the scheduler thread) and the hand-over queue length.
  void set_engine_state(const engine::EngineStats& stats, int pending);
  void count_rejected_full() { rejected_full_ += 1; }
  void count_timeout() { timeouts_ += 1; }
  void count_disconnect() { disconnects_ += 1; }

  std::int64_t requests_total(const std::string& endpoint, int status) const;
  std::string render() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, std::int64_t> requests_;
  std::atomic<std::int64_t> prompt_tokens_{0}, generated_tokens_{0};
  std::atomic<std::int64_t> rejected_full_{0}, timeouts_{0}, disconnects_{0}, steps_{0};
  std::atomic<int> running_{0}, waiting_{0}, last_batch_{0};
  std::atomic<std::int64_t> kv_used_{0}, kv_total_{0}, preemptions_{0};
  Histogram ttft_, itl_, duration_, batch_;
};

}  // namespace difftx::serve
