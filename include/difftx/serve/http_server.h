// The HTTP front end of `difftx serve` (cpp-httplib): routes, Bearer authentication, body-size
// limit, OpenAI error objects for every 4xx/5xx, the loading -> ready -> draining states, and
// the generation endpoints (parse, prepare, hand the job to the scheduler, answer with a
// response object or a server-sent-event stream while watching for the client leaving).
//
//   GET  /health               200 {"status":"ok"}; 503 while loading or draining
//   GET  /metrics              Prometheus text (metrics.h)
//   GET  /v1/models[/{id}]     the served model
//   POST /v1/completions       OpenAI completions (request.h lists the fields)
//   POST /v1/chat/completions  OpenAI chat completions (chat_template.h)
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "difftx/serve/chat_template.h"
#include "difftx/serve/metrics.h"
#include "difftx/serve/request.h"
#include "difftx/serve/scheduler.h"
#include "difftx/serve/text_codec.h"

namespace difftx::serve {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                         // 0: any free port (see HttpServer::bind)
  std::string api_key;                     // "" = no authentication
  std::size_t max_body_bytes = 1u << 20;   // larger bodies: 413
  int threads = 96;                        // HTTP worker threads; each open request holds one
  std::chrono::seconds write_timeout{10};  // a client that reads nothing this long is dropped
};

// What the generation routes need once the model is loaded (pointers outlive the server).
struct ModelEndpoint {
  std::string model_name;
  std::int64_t created = 0;  // Unix seconds, for /v1/models
  const TextCodec* codec = nullptr;
  const ChatTemplate* chat = nullptr;
  Scheduler* scheduler = nullptr;
  RequestLimits limits;                                  // model_names, context, vocab_size, ...
  std::chrono::milliseconds request_timeout{0};          // 0 = none
  nlohmann::json model_card = nlohmann::json::object();  // extra fields for /v1/models
};

class HttpServer {
 public:
  HttpServer(HttpOptions options, ServerMetrics& metrics);
  ~HttpServer();  // stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket; returns the port. Throws difftx::Error naming host and port
  // when it cannot (address in use, bad host).
  int bind();
  void start();  // serves on a background thread (after bind)
  void set_ready(ModelEndpoint endpoint);
  void set_draining();  // /health 503, new generation requests 503
  // Stops listening and waits for the handlers still answering (streams end first: drain).
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace difftx::serve
