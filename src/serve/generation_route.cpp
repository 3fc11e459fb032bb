// The generation route: parse -> prepare -> submit to the scheduler -> answer with one JSON
// object or a server-sent-event stream, cancelling the job if the client disconnects.
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <random>

#include "difftx/serve/connection.h"
#include "difftx/serve/generation_session.h"
#include "difftx/serve/prepare.h"
#include "http_util.h"

namespace difftx::serve {
namespace {

using namespace std::chrono_literals;
constexpr auto kPoll = 50ms;  // how often a waiting handler checks its client

// splitmix64 over a process-wide counter seeded from the clock and the random device: request
// ids and default seeds, distinct per request, no shared generator state to lock.
std::uint64_t next_random() {
  static std::atomic<std::uint64_t> state{[] {
    std::random_device rd;
    return (std::uint64_t(rd()) << 32) ^ rd() ^
           static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }()};
  std::uint64_t z = state.fetch_add(0x9E3779B97F4A7C15ULL) + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::string request_id(Endpoint endpoint) {
  return fmt::format("{}-{:016x}{:08x}", endpoint == Endpoint::completions ? "cmpl" : "chatcmpl",
                     next_random(), static_cast<std::uint32_t>(next_random()));
}

ApiError unavailable(std::string message, std::string code) {
  ApiError e;
  e.status = 503;
  e.type = "server_error";
  e.message = std::move(message);
  e.code = std::move(code);
  return e;
}

}  // namespace

void handle_generation(Endpoint endpoint, const httplib::Request& req, httplib::Response& res,
                       const ModelEndpoint& model) {
  ParseResult parsed = parse_request(endpoint, req.body, model.limits);
  if (auto* error = std::get_if<ApiError>(&parsed)) return send_error(res, *error);
  const ParsedRequest& request = std::get<ParsedRequest>(parsed);

  auto prepared_or =
      prepare_request(request, *model.codec, *model.chat, model.limits.context, next_random());
  if (auto* error = std::get_if<ApiError>(&prepared_or)) return send_error(res, *error);
  const PreparedRequest& prepared = std::get<PreparedRequest>(prepared_or);

  std::vector<engine::Request> requests;
  for (const auto& c : prepared.choices) requests.push_back(c.request);
  const auto deadline = model.request_timeout.count() > 0 ? Clock::now() + model.request_timeout
                                                          : Clock::time_point::max();
  auto job = std::make_shared<Job>(std::move(requests), deadline);
  switch (model.scheduler->submit(job)) {
    case Admission::accepted:
      break;
    case Admission::queue_full: {
      ApiError e;
      e.status = 429;
      e.type = "rate_limit_error";
      e.code = "queue_full";
      e.message = "the server's queue is full; retry after the Retry-After delay";
      res.set_header("Retry-After", "1");
      return send_error(res, e);
    }
    case Admission::draining:
      return send_error(res,
                        unavailable("the server is shutting down; retry against a running server",
                                    "server_shutdown"));
  }

  ResponseIdentity identity{endpoint, request_id(endpoint),
                            static_cast<std::int64_t>(std::time(nullptr)), request.model};
  auto session = std::make_shared<GenerationSession>(identity, job, prepared, *model.codec,
                                                     request.include_usage);
  const int fd =
      find_connection_socket(req.local_addr, req.local_port, req.remote_addr, req.remote_port);

  // Until the scheduler has taken the job (or refused it), the status is still open.
  while (!job->wait_admitted(kPoll)) {
    if (peer_closed(fd)) {
      job->abandon();
      res.status = 499;  // client closed the request (nginx's code; nobody reads it)
      return;
    }
  }
  if (auto error = job->error()) return send_error(res, *error);

  if (!request.stream) {
    while (!session->done()) {
      session->collect(kPoll);
      if (!session->done() && peer_closed(fd)) {
        job->abandon();
        res.status = 499;
        return;
      }
    }
    if (auto error = session->error()) return send_error(res, *error);
    return send_json(res, 200, session->response());
  }

  res.status = 200;
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream", [session, fd](std::size_t, httplib::DataSink& sink) {
        auto write = [&](const std::string& text) {
          return text.empty() || sink.write(text.data(), text.size());
        };
        if (!write(session->sse_head())) {
          session->job().abandon();
          return false;
        }
        while (!session->done()) {
          if (!write(session->next_sse(kPoll)) || (!session->done() && peer_closed(fd))) {
            session->job().abandon();
            return false;
          }
        }
        if (!write(session->sse_tail())) return false;
        sink.done();
        return true;
      });
}

}  // namespace difftx::serve
