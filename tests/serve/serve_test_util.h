// Shared fixtures of the server tests: a small difftx tokenizer trained in-process, its
// TextCodec, request limits, an in-process server over the FakeGenerator, an HTTP client that
// reads server-sent events, and the bad-request corpus (tests/serve/bad_requests.json).
#pragma once

#include <httplib.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "difftx/data/tokenizer.h"
#include "difftx/serve/http_server.h"
#include "difftx/serve/scheduler.h"
#include "difftx/serve/text_codec.h"
#include "fake_generator.h"

namespace difftx::serve::testing {

// A 320-piece difftx tokenizer trained once per process on a few synthetic sentences.
const data::Tokenizer& tiny_tokenizer();
const TextCodec& tiny_codec();

RequestLimits tiny_limits(int context = 64);

// Server-sent events of a response body: the payload of each "data: " line, in order.
std::vector<std::string> sse_payloads(const std::string& body);

struct StreamResult {
  int status = 0;
  std::string body;
  std::vector<std::string> events;  // SSE payloads ("[DONE]" included)
  bool aborted = false;             // the client hung up on purpose
};

// POSTs `body` to `path` and reads the answer as it streams. `stop_after_events` > 0: hang up
// after that many events (a client disconnecting mid-stream).
StreamResult post_stream(const std::string& host, int port, const std::string& path,
                         const std::string& body, int stop_after_events = 0,
                         const std::string& api_key = "");

// The in-process server: FakeGenerator -> Scheduler -> HttpServer on a free port.
struct TestServer {
  explicit TestServer(FakeGeneratorOptions fake = {}, HttpOptions http = {}, int max_queue = 32,
                      std::chrono::milliseconds request_timeout = std::chrono::milliseconds(0),
                      bool ready = true);
  ~TestServer();
  void make_ready();
  std::unique_ptr<httplib::Client> client() const;

  FakeGenerator generator;
  ServerMetrics metrics;
  ChatTemplate chat;
  Scheduler scheduler;
  HttpServer http;
  int port = 0;
  std::chrono::milliseconds timeout;
};

struct BadRequestCase {
  std::string endpoint;  // "completions" or "chat_completions"
  std::string body;
  int status = 400;
  std::string why;
};
std::vector<BadRequestCase> bad_request_corpus();

}  // namespace difftx::serve::testing
