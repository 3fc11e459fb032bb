// Prometheus metrics: counters, gauges and histograms rendered in the text exposition format.
#include "difftx/serve/metrics.h"

#include <fmt/format.h>

#include <limits>

namespace difftx::serve {
namespace {

// Shortest round-trip form, "+Inf" for infinity (Prometheus' spelling).
std::string number(double v) {
  if (v == std::numeric_limits<double>::infinity()) return "+Inf";
  return fmt::format("{}", v);
}

void scalar(std::string& out, const char* name, const char* type, const char* help, double value) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name,
                     number(value));
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  std::size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  std::lock_guard lock(mutex_);
  counts_[i] += 1;
  sum_ += value;
  count_ += 1;
}

std::uint64_t Histogram::count() const {
  std::lock_guard lock(mutex_);
  return count_;
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  std::lock_guard lock(mutex_);
  out += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", name, help, name);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const double le = i < bounds_.size() ? bounds_[i] : std::numeric_limits<double>::infinity();
    out += fmt::format("{}_bucket{{le=\"{}\"}} {}\n", name, number(le), cumulative);
  }
  out += fmt::format("{}_sum {}\n{}_count {}\n", name, number(sum_), name, count_);
}

ServerMetrics::ServerMetrics()
    : ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
             20, 40, 80}),
      itl_({0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05,
            0.075, 0.1,    0.15,  0.2,  0.3,   0.4,  0.5,   0.75, 1,    2.5}),
      duration_({0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640}),
      batch_({1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}) {}

void ServerMetrics::count_request(const std::string& endpoint, int status) {
  std::lock_guard lock(mutex_);
  requests_[{endpoint, status}] += 1;
}

std::int64_t ServerMetrics::requests_total(const std::string& endpoint, int status) const {
  std::lock_guard lock(mutex_);
  auto it = requests_.find({endpoint, status});
  return it == requests_.end() ? 0 : it->second;
}

void ServerMetrics::observe_step(int batch_size) {
  steps_ += 1;
  last_batch_ = batch_size;
  batch_.observe(batch_size);
}

void ServerMetrics::set_engine_state(const engine::EngineStats& stats, int pending) {
  running_ = stats.running;
  waiting_ = stats.waiting + pending;
  kv_used_ = stats.kv_blocks_used;
  kv_total_ = stats.kv_blocks_total;
  preemptions_ = stats.preemptions;
}

std::string ServerMetrics::render() const {
  std::string out;
  out +=
      "# HELP difftx_requests_total HTTP requests to the generation and info endpoints, by status "
      "code.\n";
  out += "# TYPE difftx_requests_total counter\n";
  {
    std::lock_guard lock(mutex_);
    for (const auto& [key, n] : requests_) {
      out += fmt::format("difftx_requests_total{{endpoint=\"{}\",code=\"{}\"}} {}\n", key.first,
                         key.second, n);
    }
  }
  scalar(out, "difftx_prompt_tokens_total", "counter", "Prompt tokens admitted for generation.",
         double(prompt_tokens_.load()));
  scalar(out, "difftx_generation_tokens_total", "counter", "Tokens generated and delivered.",
         double(generated_tokens_.load()));
  scalar(out, "difftx_requests_rejected_queue_full_total", "counter",
         "Requests answered 429 (queue full).", double(rejected_full_.load()));
  scalar(out, "difftx_request_timeouts_total", "counter",
         "Requests ended by the per-request timeout.", double(timeouts_.load()));
  scalar(out, "difftx_client_disconnects_total", "counter",
         "Generations cancelled because the client left.", double(disconnects_.load()));
  scalar(out, "difftx_engine_steps_total", "counter", "Engine scheduler steps.",
         double(steps_.load()));
  scalar(out, "difftx_num_requests_running", "gauge", "Sequences in the running batch.",
         running_.load());
  scalar(out, "difftx_num_requests_waiting", "gauge",
         "Sequences queued, not yet running (queue depth).", waiting_.load());
  scalar(out, "difftx_batch_size", "gauge", "Sequences in the last engine step.",
         last_batch_.load());
  scalar(out, "difftx_kv_blocks_used", "gauge", "KV-cache blocks in use.", double(kv_used_.load()));
  scalar(out, "difftx_kv_blocks_total", "gauge", "KV-cache blocks in the pool.",
         double(kv_total_.load()));
  scalar(out, "difftx_preemptions_total", "counter",
         "Sequences preempted when the KV pool ran dry.", double(preemptions_.load()));
  ttft_.render(out, "difftx_time_to_first_token_seconds",
               "Seconds from request arrival to its first token.");
  itl_.render(out, "difftx_inter_token_latency_seconds",
              "Seconds between consecutive tokens of a sequence.");
  duration_.render(out, "difftx_request_duration_seconds",
                   "Seconds from request arrival to its last token.");
  batch_.render(out, "difftx_batch_size_steps", "Sequences per engine step.");
  return out;
}

}  // namespace difftx::serve
