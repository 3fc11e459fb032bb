// `difftx serve` from start to exit: listen at once (/health 503 while loading), load the
// model, serve, and on SIGTERM or SIGINT drain: refuse new requests (503), let in-flight
// requests finish for up to drain_timeout, cancel the rest (each stream still gets its final
// event and [DONE]), stop, return 0. A second signal cancels at once.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

#include "difftx/serve/http_server.h"
#include "difftx/serve/serving_model.h"

namespace difftx::serve {

struct ServeOptions {
  ServingModelOptions model;
  std::string model_name;  // the id clients send as "model"
  HttpOptions http;
  int max_queue = 256;   // sequences waiting beyond the running batch; then 429
  int max_choices = 16;  // prompts x n per request
  std::chrono::milliseconds request_timeout{std::chrono::minutes(10)};  // 0 = none
  std::chrono::milliseconds drain_timeout{std::chrono::seconds(30)};
  std::function<void(const std::string&)> log;  // status lines (stderr by default)
};

// Blocks until a signal ends the server; returns the exit code (0). Throws difftx::Error for
// bad options, a port that cannot be bound, or a model that cannot be loaded.
int run_serve(const ServeOptions& options);

}  // namespace difftx::serve
