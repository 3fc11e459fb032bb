// HttpServer: cpp-httplib set-up, the server states, authentication, the info routes and the
// error handler that gives every 4xx/5xx an OpenAI error object.
#include "difftx/serve/http_server.h"

#include <fmt/format.h>
#include <sys/socket.h>

#include <atomic>
#include <csignal>
#include <mutex>
#include <optional>
#include <thread>

#include "difftx/core/error.h"
#include "http_util.h"

namespace difftx::serve {

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(dump_json(body), "application/json");
}

void send_error(httplib::Response& res, const ApiError& error) {
  send_json(res, error.status, error.to_json());
}

namespace {

enum class State { loading, ready, draining };

constexpr int kListenBacklog = 1024;  // pending connections (the kernel caps it at somaxconn)

// Constant-time comparison of the presented key with the configured one.
bool same_secret(const std::string& presented, const std::string& key) {
  if (key.empty()) return false;
  unsigned char diff = presented.size() == key.size() ? 0 : 1;
  for (std::size_t i = 0; i < presented.size(); ++i) {
    diff |= static_cast<unsigned char>(presented[i] ^ key[i % key.size()]);
  }
  return diff == 0;
}

// The metrics label of a path.
std::string route_label(const std::string& path) {
  if (path == "/v1/completions") return "completions";
  if (path == "/v1/chat/completions") return "chat_completions";
  if (path.rfind("/v1/models", 0) == 0) return "models";
  if (path == "/health") return "health";
  if (path == "/metrics") return "metrics";
  return "other";
}

}  // namespace

struct HttpServer::Impl {
  HttpOptions options;
  ServerMetrics& metrics;
  httplib::Server server;
  std::thread thread;
  std::atomic<State> state{State::loading};
  std::mutex model_mutex;
  std::optional<ModelEndpoint> model;  // set once by set_ready
  int port = -1;
  int listen_fd = -1;  // the listening socket, seen in the socket-options callback

  Impl(HttpOptions o, ServerMetrics& m) : options(std::move(o)), metrics(m) {}

  // The endpoint when ready; otherwise answers 503 and returns null.
  const ModelEndpoint* ready_or_503(httplib::Response& res) {
    const State s = state.load();
    if (s == State::ready) {
      std::lock_guard lock(model_mutex);
      return &*model;
    }
    ApiError e;
    e.status = 503;
    e.type = "server_error";
    if (s == State::loading) {
      e.code = "model_loading";
      e.message = "the model is still loading; retry when GET /health answers 200";
    } else {
      e.code = "server_shutdown";
      e.message = "the server is shutting down; retry against a running server";
    }
    res.set_header("Retry-After", "1");
    send_error(res, e);
    return nullptr;
  }

  bool authorised(const httplib::Request& req, httplib::Response& res) {
    if (options.api_key.empty()) return true;
    const std::string header = req.get_header_value("Authorization");
    static const std::string kBearer = "Bearer ";
    if (header.rfind(kBearer, 0) == 0 &&
        same_secret(header.substr(kBearer.size()), options.api_key))
      return true;
    ApiError e;
    e.status = 401;
    e.type = "authentication_error";
    e.code = "invalid_api_key";
    e.message = header.empty() ? "missing API key: send the header 'Authorization: Bearer <key>'"
                               : "invalid API key in the Authorization header";
    res.set_header("WWW-Authenticate", "Bearer");
    send_error(res, e);
    return false;
  }

  nlohmann::json model_object(const ModelEndpoint& m) const {
    nlohmann::json card = {{"id", m.model_name},
                           {"object", "model"},
                           {"created", m.created},
                           {"owned_by", "difftx"},
                           {"max_model_len", m.limits.context}};
    for (const auto& [k, v] : m.model_card.items()) card[k] = v;
    return card;
  }

  void routes() {
    server.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const State s = state.load();
      if (s == State::ready) return send_json(res, 200, {{"status", "ok"}});
      res.set_header("Retry-After", "1");
      send_json(res, 503, {{"status", s == State::loading ? "loading" : "draining"}});
    });
    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
    });
    server.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
      if (!authorised(req, res)) return;
      const ModelEndpoint* m = ready_or_503(res);
      if (!m) return;
      send_json(res, 200,
                {{"object", "list"}, {"data", nlohmann::json::array({model_object(*m)})}});
    });
    server.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (!authorised(req, res)) return;
      const ModelEndpoint* m = ready_or_503(res);
      if (!m) return;
      if (req.matches[1] != m->model_name) {
        ApiError e;
        e.status = 404;
        e.param = "model";
        e.code = "model_not_found";
        e.message =
            fmt::format("the model '{}' does not exist here; GET /v1/models lists the served model",
                        std::string(req.matches[1]).substr(0, 200));
        return send_error(res, e);
      }
      send_json(res, 200, model_object(*m));
    });
    auto generation = [this](Endpoint endpoint) {
      return [this, endpoint](const httplib::Request& req, httplib::Response& res) {
        if (!authorised(req, res)) return;
        const ModelEndpoint* m = ready_or_503(res);
        if (!m) return;
        handle_generation(endpoint, req, res, *m);
      };
    };
    server.Post("/v1/completions", generation(Endpoint::completions));
    server.Post("/v1/chat/completions", generation(Endpoint::chat_completions));

    // Every 4xx/5xx without a body (unknown route, oversized body, unreadable request) gets
    // an OpenAI error object.
    httplib::Server::HandlerWithResponse on_error = [](const httplib::Request& req,
                                                       httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      ApiError e;
      e.status = res.status;
      e.type = res.status >= 500 ? "server_error" : "invalid_request_error";
      if (res.status == 404) {
        e.code = "not_found";
        e.message = fmt::format(
            "no route {} {}; the server answers POST /v1/completions, POST "
            "/v1/chat/completions, GET /v1/models, GET /health and GET /metrics",
            req.method, req.path.substr(0, 200));
      } else if (res.status == 413) {
        e.code = "request_too_large";
        e.message =
            "the request body is larger than the server's limit (--max-body-bytes); send a smaller "
            "request";
      } else if (res.status == 499) {
        return httplib::Server::HandlerResponse::Unhandled;  // the client is gone
      } else {
        e.message = fmt::format("the request could not be handled (HTTP {})", res.status);
      }
      send_error(res, e);
      return httplib::Server::HandlerResponse::Handled;
    };
    server.set_error_handler(on_error);
    server.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          ApiError e;
          e.status = 500;
          e.type = "server_error";
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& ex) {
            e.message = fmt::format("internal error while answering: {}", ex.what());
          } catch (...) {
            e.message = "internal error while answering";
          }
          send_error(res, e);
        });
    server.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      metrics.count_request(route_label(req.path), res.status);
    });
  }
};

HttpServer::HttpServer(HttpOptions options, ServerMetrics& metrics)
    : impl_(std::make_unique<Impl>(std::move(options), metrics)) {
  DIFFTX_CHECK(impl_->options.threads >= 2, "--http-threads must be >= 2, got {}",
               impl_->options.threads);
  DIFFTX_CHECK(impl_->options.max_body_bytes >= 64, "--max-body-bytes must be >= 64, got {}",
               impl_->options.max_body_bytes);
  // A write to a client that has left must fail with EPIPE, not kill the process.
  std::signal(SIGPIPE, SIG_IGN);
  const int threads = impl_->options.threads;
  impl_->server.new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<std::size_t>(threads));
  };
  impl_->server.set_payload_max_length(impl_->options.max_body_bytes);
  impl_->server.set_write_timeout(impl_->options.write_timeout.count(), 0);
  impl_->server.set_tcp_nodelay(true);
  impl_->server.set_keep_alive_timeout(
      2);  // idle keep-alive connections hold a thread (and delay stop)
  // The library's default options set SO_REUSEPORT, which would let a second server bind the
  // same port silently; SO_REUSEADDR only allows a restart over connections in TIME_WAIT.
  impl_->server.set_socket_options([impl = impl_.get()](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    impl->listen_fd = sock;
  });
  impl_->routes();
}

HttpServer::~HttpServer() {
  stop();
}

int HttpServer::bind() {
  auto& o = impl_->options;
  if (o.port < 0 || o.port > 65535) fail("--port must be in [0, 65535], got {}", o.port);
  if (o.port == 0) {
    impl_->port = impl_->server.bind_to_any_port(o.host);
    if (impl_->port < 0) fail("cannot listen on {} (any port): check --host", o.host);
  } else {
    if (!impl_->server.bind_to_port(o.host, o.port)) {
      fail(
          "cannot listen on {}:{}: the port is in use or the host is not an address of this "
          "machine; pick "
          "another --port (0 = any free port) or --host",
          o.host, o.port);
    }
    impl_->port = o.port;
  }
  // The library listens with a backlog of 5: a burst of clients connecting at once would see
  // refused or retried connections. Listening again on the socket raises the backlog.
  if (impl_->listen_fd >= 0) ::listen(impl_->listen_fd, kListenBacklog);
  return impl_->port;
}

void HttpServer::start() {
  DIFFTX_CHECK(impl_->port >= 0, "HttpServer::start called before bind");
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  // stop() only ends a server that has entered its accept loop: wait for it (bounded).
  for (int i = 0; i < 5000 && !impl_->server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void HttpServer::set_ready(ModelEndpoint endpoint) {
  {
    std::lock_guard lock(impl_->model_mutex);
    impl_->model = std::move(endpoint);
  }
  impl_->state.store(State::ready);
}

void HttpServer::set_draining() {
  impl_->state.store(State::draining);
}

void HttpServer::stop() {
  if (impl_->server.is_running() || impl_->thread.joinable()) impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace difftx::serve
