// run_serve: signal handling, start-up order (listen, load, ready), and the drain on SIGTERM.
#include "difftx/serve/serve_app.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <thread>

#include "difftx/core/error.h"

namespace difftx::serve {
namespace {

// Counts SIGTERM/SIGINT. A handler (whatever thread the kernel picks, OpenBLAS's and OpenMP's
// included) writes the signal to a pipe; a watcher thread reads it and wakes waiters.
int g_signal_pipe[2] = {-1, -1};

void on_shutdown_signal(int sig) {
  const int saved = errno;
  const char byte = static_cast<char>(sig);
  [[maybe_unused]] const ssize_t n = write(g_signal_pipe[1], &byte, 1);
  errno = saved;
}

class SignalWatcher {
 public:
  SignalWatcher() {
    if (pipe(g_signal_pipe) != 0) fail("cannot create the signal pipe: {}", std::strerror(errno));
    for (int fd : g_signal_pipe) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct sigaction action {};
    action.sa_handler = on_shutdown_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &action, &previous_term_);
    sigaction(SIGINT, &action, &previous_int_);
    thread_ = std::thread([this] { run(); });
  }
  ~SignalWatcher() {
    stop_ = true;
    thread_.join();
    sigaction(SIGTERM, &previous_term_, nullptr);
    sigaction(SIGINT, &previous_int_, nullptr);
    for (int& fd : g_signal_pipe) {
      close(fd);
      fd = -1;
    }
  }
  // Waits until at least `count` signals arrived (or `timeout` passed); true if they did.
  bool wait(int count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return signals_ >= count; });
  }
  int signals() {
    std::lock_guard lock(mutex_);
    return signals_;
  }

 private:
  void run() {
    while (!stop_) {
      pollfd p{g_signal_pipe[0], POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char buf[16];
      const ssize_t n = read(g_signal_pipe[0], buf, sizeof buf);
      if (n <= 0) continue;
      {
        std::lock_guard lock(mutex_);
        signals_ += static_cast<int>(n);
      }
      cv_.notify_all();
    }
  }
  struct sigaction previous_term_ {
  }, previous_int_{};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable cv_;
  int signals_ = 0;
  std::thread thread_;
};

}  // namespace

int run_serve(const ServeOptions& options) {
  auto log = options.log ? options.log : [](const std::string& line) {
    fmt::print(stderr, "difftx serve: {}\n", line);
    std::fflush(stderr);
  };
  DIFFTX_CHECK(options.max_queue >= 0, "--max-queue must be >= 0, got {}", options.max_queue);
  DIFFTX_CHECK(options.model.engine.max_batch >= 1, "--max-batch must be >= 1, got {}",
               options.model.engine.max_batch);
  DIFFTX_CHECK(options.request_timeout.count() >= 0, "--request-timeout must be >= 0");
  DIFFTX_CHECK(options.drain_timeout.count() >= 0, "--drain-timeout must be >= 0");

  SignalWatcher signals;
  ServerMetrics metrics;
  HttpServer http(options.http, metrics);
  const int port = http.bind();
  http.start();
  log(fmt::format("listening on http://{}:{} (loading {})", options.http.host, port,
                  options.model.checkpoint.string()));

  std::unique_ptr<ServingModel> served;
  try {
    served = load_serving_model(options.model);
  } catch (...) {
    http.stop();
    throw;
  }
  if (signals.signals() > 0) {
    log("signal received while loading: stopped");
    http.stop();
    return 0;
  }

  SchedulerOptions sched;
  sched.max_in_flight = options.model.engine.max_batch + options.max_queue;
  Scheduler scheduler(*served->generator, metrics, sched);
  scheduler.start();

  ModelEndpoint endpoint;
  endpoint.model_name = options.model_name;
  endpoint.created = static_cast<std::int64_t>(std::time(nullptr));
  endpoint.codec = &served->codec;
  endpoint.chat = &served->chat;
  endpoint.scheduler = &scheduler;
  endpoint.limits.model_names = {options.model_name};
  endpoint.limits.context = served->model->config().max_seq_len;
  endpoint.limits.vocab_size = served->model->config().vocab_size;
  endpoint.limits.max_choices = options.max_choices;
  endpoint.request_timeout = options.request_timeout;
  endpoint.model_card = served->card;
  http.set_ready(endpoint);
  log(fmt::format(
      "ready: model '{}' ({}, {} parameters, context {}, {} on {}), max batch {}, queue {}",
      options.model_name, attention_kind_name(served->model->config().attention),
      served->card["difftx"]["parameters"].get<std::int64_t>(), endpoint.limits.context,
      served->backend->name(), options.model.device, options.model.engine.max_batch,
      options.max_queue));

  while (!signals.wait(1, std::chrono::seconds(1))) {
  }
  log(fmt::format("draining: {} sequences in flight, new requests get 503 (up to {:.1f} s)",
                  scheduler.in_flight(),
                  std::chrono::duration<double>(options.drain_timeout).count()));
  http.set_draining();
  scheduler.begin_drain(Clock::now() + options.drain_timeout);
  // A second signal cuts the drain short.
  std::atomic<bool> drained{false};
  std::thread second([&] {
    while (!drained.load()) {
      if (signals.wait(2, std::chrono::milliseconds(100))) {
        scheduler.begin_drain(Clock::now());
        return;
      }
    }
  });
  while (!scheduler.wait_idle(std::chrono::milliseconds(100))) {
  }
  drained = true;
  second.join();
  http.stop();  // waits for the handlers writing their final events
  scheduler.stop();
  log("stopped");
  return 0;
}

}  // namespace difftx::serve
