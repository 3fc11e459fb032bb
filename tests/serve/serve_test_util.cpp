// Server test fixtures: tokenizer, limits, in-process server, SSE client, bad-request corpus.
#include "serve_test_util.h"

#include <fstream>
#include <stdexcept>

namespace difftx::serve::testing {

const data::Tokenizer& tiny_tokenizer() {
  static const data::Tokenizer tokenizer = [] {
    std::vector<std::string> sentences;
    const char* words[] = {"the",    "cat",    "sees",  "a",     "dog",   "river", "garden",
                           "friend", "runs",   "over",  "small", "boat",  "said",  "jury",
                           "city",   "number", "magic", "é",     "naïve", "café"};
    for (int i = 0; i < 400; ++i) {
      std::string s;
      for (int k = 0; k < 8; ++k)
        s += std::string(k ? " " : "") + words[(i * 7 + k * 3 + i / 5) % 20];
      sentences.push_back(s + ".");
    }
    data::TokenizerTrainOptions options;
    options.vocab_size = 340;
    options.character_coverage = 1.0;
    return data::Tokenizer::train(sentences, options);
  }();
  return tokenizer;
}

const TextCodec& tiny_codec() {
  static const TextCodec codec = TextCodec::from_tokenizer(tiny_tokenizer());
  return codec;
}

RequestLimits tiny_limits(int context) {
  RequestLimits limits;
  limits.model_names = {"tiny"};
  limits.context = context;
  limits.vocab_size = tiny_codec().vocab_size();
  return limits;
}

std::vector<std::string> sse_payloads(const std::string& body) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t end = body.find('\n', pos);
    if (end == std::string::npos) end = body.size();
    const std::string line = body.substr(pos, end - pos);
    if (line.rfind("data: ", 0) == 0) out.push_back(line.substr(6));
    pos = end + 1;
  }
  return out;
}

StreamResult post_stream(const std::string& host, int port, const std::string& path,
                         const std::string& body, int stop_after_events,
                         const std::string& api_key) {
  httplib::Client cli(host, port);
  cli.set_read_timeout(60, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = path;
  req.body = body;
  req.set_header("Content-Type", "application/json");
  if (!api_key.empty()) req.set_header("Authorization", "Bearer " + api_key);
  StreamResult result;
  int events = 0;
  req.content_receiver = [&](const char* data, std::size_t len, std::uint64_t, std::uint64_t) {
    result.body.append(data, len);
    std::size_t count = 0, at = 0;
    while ((at = result.body.find("\n\n", at)) != std::string::npos) {
      ++count;
      at += 2;
    }
    events = static_cast<int>(count);
    if (stop_after_events > 0 && events >= stop_after_events) {
      result.aborted = true;
      return false;
    }
    return true;
  };
  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  const bool ok = cli.send(req, res, error);
  result.status = ok || result.aborted ? res.status : -1;
  if (result.body.empty()) result.body = res.body;
  result.events = sse_payloads(result.body);
  return result;
}

TestServer::TestServer(FakeGeneratorOptions fake, HttpOptions http_options, int max_queue,
                       std::chrono::milliseconds request_timeout, bool ready)
    : generator(fake),
      scheduler(generator, metrics,
                SchedulerOptions{fake.max_batch + max_queue, std::chrono::milliseconds(20)}),
      http(
          [&] {
            http_options.host = "127.0.0.1";
            http_options.port = 0;
            return http_options;
          }(),
          metrics),
      timeout(request_timeout) {
  port = http.bind();
  http.start();
  scheduler.start();
  if (ready) make_ready();
}

void TestServer::make_ready() {
  ModelEndpoint endpoint;
  endpoint.model_name = "tiny";
  endpoint.created = 1700000000;
  endpoint.codec = &tiny_codec();
  endpoint.chat = &chat;
  endpoint.scheduler = &scheduler;
  endpoint.limits = tiny_limits(generator.options().context);
  endpoint.request_timeout = timeout;
  http.set_ready(endpoint);
}

TestServer::~TestServer() {
  http.set_draining();
  scheduler.begin_drain(Clock::now());
  scheduler.wait_idle(std::chrono::seconds(10));
  http.stop();
  scheduler.stop();
}

std::unique_ptr<httplib::Client> TestServer::client() const {
  auto c = std::make_unique<httplib::Client>("127.0.0.1", port);
  c->set_read_timeout(30, 0);
  return c;
}

std::vector<BadRequestCase> bad_request_corpus() {
  const std::string path = std::string(DIFFTX_SOURCE_DIR) + "/tests/serve/bad_requests.json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  const auto j = nlohmann::json::parse(in);
  std::vector<BadRequestCase> cases;
  for (const auto& c : j.at("cases")) {
    BadRequestCase b;
    b.endpoint = c.at("endpoint").get<std::string>();
    b.body = c.at("body").get<std::string>();
    if (c.value("latin1", false)) {
      // UTF-8 text of code points < 256 -> one byte each (carries invalid UTF-8 through JSON).
      std::string bytes;
      for (std::size_t i = 0; i < b.body.size(); ++i) {
        const auto ch = static_cast<unsigned char>(b.body[i]);
        if (ch >= 0xC0 && i + 1 < b.body.size()) {
          bytes += static_cast<char>(((ch & 0x03) << 6) |
                                     (static_cast<unsigned char>(b.body[++i]) & 0x3F));
        } else {
          bytes += static_cast<char>(ch);
        }
      }
      b.body = bytes;
    }
    b.status = c.value("status", 400);
    b.why = c.at("why").get<std::string>();
    cases.push_back(b);
  }
  return cases;
}

}  // namespace difftx::serve::testing
