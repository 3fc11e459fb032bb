// `difftx serve` end to end on the CPU with tiny trained checkpoints, through real clients:
// curl for the raw protocol, the official OpenAI Node SDK (openai_client.cjs), 32 concurrent
// streaming clients against sequential runs (greedy), a client that hangs up mid-stream, the
// bad-request corpus while a good stream runs, SIGTERM under load, and every checkpoint kind
// (DIFF V1, V2, softmax, and a Llama model through export/import hf). Every wait is bounded.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "difftx/runtime/checkpoint_store.h"
#include "serve_test_util.h"
#include "server_process.h"
#include "train/train_test_util.h"

namespace difftx::serve {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using difftx::testing::run_command;
using nlohmann::json;
using testing::post_stream;
using testing::ServerProcess;

fs::path work_dir() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("difftx_serve_e2e_" + std::to_string(::getpid()));
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

// A checkpoint of a tiny model of `kind`, trained for a few steps on the synthetic corpus.
fs::path tiny_checkpoint(const std::string& kind) {
  static std::map<std::string, fs::path> made;
  if (auto it = made.find(kind); it != made.end()) return it->second;
  const fs::path run = work_dir() / ("run_" + kind);
  json config = difftx::testing::tiny_run_config(run, 4);
  config["model"]["attention"] = kind;
  config["model"]["max_seq_len"] = 128;
  config["output"]["checkpoint_every"] = 4;
  const fs::path file = difftx::testing::write_json(work_dir() / (kind + ".json"), config);
  auto r = run_command(difftx::testing::cli() + " train --quiet --config " + file.string());
  if (r.status != 0)
    throw std::runtime_error("training the tiny " + kind + " model failed:\n" + r.output);
  return made[kind] = run;
}

std::string log_path(const std::string& name) {
  return (work_dir() / (name + ".log")).string();
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string curl(const ServerProcess& s, const std::string& args) {
  auto r = run_command("curl -sS --max-time 60 " + args);
  EXPECT_EQ(r.status, 0) << r.output;
  return r.output;
}

std::string completion_text(const json& r) {
  return r["choices"][0]["text"].get<std::string>();
}

// Text of a completions SSE stream (choice 0), or "" with a failure if it did not end properly.
std::string stream_text(const testing::StreamResult& r, std::string* finish = nullptr) {
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(r.events.empty());
  if (r.events.empty()) return "";
  EXPECT_EQ(r.events.back(), "[DONE]");
  std::string text;
  for (std::size_t i = 0; i + 1 < r.events.size(); ++i) {
    json chunk = json::parse(r.events[i]);
    EXPECT_FALSE(chunk.contains("error")) << r.events[i];
    if (!chunk.contains("choices") || chunk["choices"].empty()) continue;
    text += chunk["choices"][0].value("text", "");
    if (finish && !chunk["choices"][0]["finish_reason"].is_null())
      *finish = chunk["choices"][0]["finish_reason"];
  }
  return text;
}

class ServeEndToEnd : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ =
        new ServerProcess(difftx::testing::cli(),
                          {"--checkpoint", tiny_checkpoint("diff_v1").string(), "--model-name",
                           "tiny", "--max-batch", "8", "--max-queue", "64", "--drain-timeout", "5"},
                          log_path("shared"));
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static ServerProcess* server_;
};
ServerProcess* ServeEndToEnd::server_ = nullptr;

TEST_F(ServeEndToEnd, CurlSpeaksTheRawProtocol) {
  const ServerProcess& s = *server_;
  const std::string base = s.base_url();
  auto health = json::parse(curl(s, base + "/health"));
  EXPECT_EQ(health["status"], "ok");
  auto models = json::parse(curl(s, base + "/v1/models"));
  EXPECT_EQ(models["data"][0]["id"], "tiny");
  EXPECT_EQ(models["data"][0]["difftx"]["attention"], "diff_v1");

  const std::string body = R"({"model":"tiny","prompt":"the cat","max_tokens":6,"temperature":0})";
  auto r = json::parse(curl(s, "-H 'Content-Type: application/json' -d " + shell_quote(body) + " " +
                                   base + "/v1/completions"));
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_GE(r["usage"]["completion_tokens"].get<int>(), 1);

  // Streaming: headers, "data: {json}" events each followed by a blank line, "data: [DONE]".
  const std::string sbody =
      R"({"model":"tiny","prompt":"the cat","max_tokens":6,"temperature":0,"stream":true})";
  const std::string raw = curl(s, "-N -i -H 'Content-Type: application/json' -d " +
                                      shell_quote(sbody) + " " + base + "/v1/completions");
  EXPECT_NE(raw.find("Content-Type: text/event-stream"), std::string::npos) << raw;
  const auto split = raw.find("\r\n\r\n");
  ASSERT_NE(split, std::string::npos);
  const std::string events = raw.substr(split + 4);
  EXPECT_TRUE(std::regex_search(events, std::regex("^data: \\{")));
  EXPECT_TRUE(events.size() >= 14 && events.substr(events.size() - 14) == "data: [DONE]\n\n")
      << events;
  testing::StreamResult parsed;
  parsed.status = 200;
  parsed.events = testing::sse_payloads(events);
  EXPECT_EQ(stream_text(parsed), completion_text(r));

  // Chat, and an error object with its status.
  const std::string cbody =
      R"({"model":"tiny","messages":[{"role":"user","content":"the dog"}],"max_tokens":5})";
  auto chat =
      json::parse(curl(s, "-d " + shell_quote(cbody) + " " + base + "/v1/chat/completions"));
  EXPECT_EQ(chat["choices"][0]["message"]["role"], "assistant");
  const std::string bad =
      curl(s, "-w '\\n%{http_code}' -d '{\"prompt\": 5}' " + base + "/v1/completions");
  EXPECT_EQ(bad.substr(bad.rfind('\n') + 1), "400");
  EXPECT_EQ(json::parse(bad.substr(0, bad.rfind('\n')))["error"]["param"], "prompt");

  const std::string metrics = curl(s, base + "/metrics");
  EXPECT_NE(metrics.find("difftx_time_to_first_token_seconds_bucket"), std::string::npos);
  EXPECT_NE(metrics.find("difftx_kv_blocks_total"), std::string::npos);
}

TEST_F(ServeEndToEnd, OfficialOpenAiNodeSdk) {
  const fs::path script = fs::path(DIFFTX_SOURCE_DIR) / "tests/serve/openai_client.cjs";
  const fs::path sdk = fs::path(DIFFTX_SOURCE_DIR) / "data/npm/node_modules/openai/package.json";
  ASSERT_TRUE(fs::exists(sdk)) << "the openai npm SDK is missing: run scripts/fetch-openai-sdk.sh";
  auto r =
      run_command("timeout 120 node " + script.string() + " " + server_->base_url() + "/v1 tiny");
  ASSERT_EQ(r.status, 0) << r.output;
  auto summary = json::parse(r.output.substr(r.output.rfind('{')));
  EXPECT_TRUE(summary["completion"].is_string());
  EXPECT_GE(summary["chat_chunks"].get<int>(), 2);
}

TEST_F(ServeEndToEnd, ThirtyTwoConcurrentStreamsMatchSequentialRuns) {
  const char* words[] = {"the", "cat", "dog", "river", "friend", "garden", "boat", "house"};
  std::vector<std::string> prompts;
  for (int i = 0; i < 32; ++i)
    prompts.push_back(std::string(words[i % 8]) + " " + words[(i / 8 + i) % 8]);
  auto request = [&](int i) {
    return json{{"model", "tiny"},
                {"prompt", prompts[std::size_t(i)]},
                {"max_tokens", 24},
                {"temperature", 0},
                {"stream", true}}
        .dump();
  };
  std::vector<std::string> sequential;
  for (int i = 0; i < 32; ++i) {
    sequential.push_back(
        stream_text(post_stream("127.0.0.1", server_->port(), "/v1/completions", request(i))));
  }
  std::vector<std::future<testing::StreamResult>> futures;
  for (int i = 0; i < 32; ++i) {
    futures.push_back(std::async(std::launch::async, [&, i] {
      return post_stream("127.0.0.1", server_->port(), "/v1/completions", request(i));
    }));
  }
  for (int i = 0; i < 32; ++i) {
    EXPECT_EQ(stream_text(futures[std::size_t(i)].get()), sequential[std::size_t(i)])
        << "prompt " << i;
  }
  // More than one sequence ran per step: the batch really was shared.
  httplib::Client c("127.0.0.1", server_->port());
  const std::string metrics = c.Get("/metrics")->body;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      metrics, m, std::regex("difftx_batch_size_steps_bucket\\{le=\"1\"\\} ([0-9]+)")));
  std::smatch total;
  ASSERT_TRUE(
      std::regex_search(metrics, total, std::regex("difftx_batch_size_steps_count ([0-9]+)")));
  EXPECT_LT(std::stol(m[1]), std::stol(total[1]));
}

// Reads a gauge or counter value from /metrics.
double metric(int port, const std::string& name) {
  httplib::Client c("127.0.0.1", port);
  auto res = c.Get("/metrics");
  if (!res) return -1;
  std::smatch m;
  if (!std::regex_search(res->body, m, std::regex("\n" + name + " ([0-9.e+-]+)"))) return -1;
  return std::stod(m[1]);
}

TEST(ServeEndToEndProcess, ClientDisconnectMidStreamFreesItsBlocks) {
  // A server that decodes one sequence at a time and a request of 16 choices of 100 tokens:
  // 1,600 decode steps, so the server is still streaming when the client goes after 3 events
  // (with the shared server, 8 rows a step, a loaded machine could let it finish the whole
  // answer, buffered in the socket, before the client closed).
  ServerProcess s(difftx::testing::cli(),
                  {"--checkpoint", tiny_checkpoint("diff_v1").string(), "--model-name", "tiny",
                   "--max-batch", "1"},
                  log_path("disconnect"));
  const int port = s.port();
  const double before = metric(port, "difftx_client_disconnects_total");
  const std::string body = json{{"model", "tiny"}, {"prompt", "the river"}, {"max_tokens", 100},
                                {"n", 16},         {"stream", true},        {"ignore_eos", true}}
                               .dump();
  auto r = post_stream("127.0.0.1", port, "/v1/completions", body, /*stop_after_events=*/3);
  EXPECT_TRUE(r.aborted);
  bool freed = false;
  for (int i = 0; i < 200 && !freed; ++i) {
    std::this_thread::sleep_for(25ms);
    freed = metric(port, "difftx_client_disconnects_total") == before + 1 &&
            metric(port, "difftx_kv_blocks_used") == 0 &&
            metric(port, "difftx_num_requests_running") == 0;
  }
  EXPECT_TRUE(freed) << metric(port, "difftx_client_disconnects_total") << " disconnects, "
                     << metric(port, "difftx_kv_blocks_used") << " KV blocks in use";
}

TEST_F(ServeEndToEnd, BadRequestsGet4xxWhileAGoodStreamCompletes) {
  const int port = server_->port();
  const std::string good = json{{"model", "tiny"},  {"prompt", "the garden"}, {"max_tokens", 100},
                                {"temperature", 0}, {"stream", true},         {"ignore_eos", true}}
                               .dump();
  const std::string expected = stream_text(post_stream("127.0.0.1", port, "/v1/completions", good));
  // Good streams run back to back for as long as the corpus is being sent.
  std::atomic<bool> corpus_done{false};
  auto streams = std::async(std::launch::async, [&] {
    std::vector<std::string> texts;
    do {
      texts.push_back(stream_text(post_stream("127.0.0.1", port, "/v1/completions", good)));
    } while (!corpus_done.load() && texts.size() < 1000);
    return texts;
  });
  const auto cases = testing::bad_request_corpus();
  ASSERT_GE(cases.size(), 50u);
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(30, 0);
  for (const auto& bad : cases) {
    const std::string path =
        bad.endpoint == "completions" ? "/v1/completions" : "/v1/chat/completions";
    auto res = c.Post(path.c_str(), bad.body, "application/json");
    ASSERT_TRUE(res) << bad.why;
    EXPECT_EQ(res->status, bad.status) << bad.why << ": " << res->body;
    auto j = json::parse(res->body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << bad.why;
    EXPECT_TRUE(j["error"]["message"].is_string()) << bad.why;
  }
  corpus_done = true;
  const auto texts = streams.get();
  ASSERT_GE(texts.size(), 1u);
  for (const auto& t : texts) EXPECT_EQ(t, expected);
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);  // still serving
}

TEST(ServeEndToEndProcess, AuthAndBodyLimit) {
  ServerProcess s(difftx::testing::cli(),
                  {"--checkpoint", tiny_checkpoint("diff_v1").string(), "--model-name", "tiny",
                   "--api-key", "k3y", "--max-body-bytes", "2048"},
                  log_path("auth"));
  const std::string body = R"({"prompt":"the cat","max_tokens":3})";
  httplib::Client c("127.0.0.1", s.port());
  auto no_key = c.Post("/v1/completions", body, "application/json");
  ASSERT_TRUE(no_key);
  EXPECT_EQ(no_key->status, 401);
  EXPECT_EQ(json::parse(no_key->body)["error"]["type"], "authentication_error");
  auto ok = c.Post("/v1/completions", {{"Authorization", "Bearer k3y"}}, body, "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
  auto big = c.Post("/v1/completions", {{"Authorization", "Bearer k3y"}},
                    json{{"prompt", std::string(5000, 'a')}}.dump(), "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_TRUE(json::parse(big->body)["error"]["message"].is_string());
}

TEST(ServeEndToEndProcess, SigtermDrainsUnderLoadAndExitsZero) {
  // --drain-timeout 0: what is still running when the signal comes is cancelled at once.
  ServerProcess s(difftx::testing::cli(),
                  {"--checkpoint", tiny_checkpoint("diff_v1").string(), "--model-name", "tiny",
                   "--max-batch", "4", "--drain-timeout", "0"},
                  log_path("sigterm"));
  const int port = s.port();
  std::vector<std::future<testing::StreamResult>> streams;
  for (int i = 0; i < 12; ++i) {
    streams.push_back(std::async(std::launch::async, [port, i] {
      return post_stream("127.0.0.1", port, "/v1/completions",
                         json{{"prompt", "the boat " + std::to_string(i)},
                              {"max_tokens", 110},
                              {"stream", true},
                              {"ignore_eos", true}}
                             .dump());
    }));
  }
  // Four running and at least four queued before the signal.
  for (int i = 0; i < 2000 && (metric(port, "difftx_num_requests_running") < 4 ||
                               metric(port, "difftx_num_requests_waiting") < 4);
       ++i) {
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_GE(metric(port, "difftx_num_requests_waiting"), 4);
  s.signal(SIGTERM);
  int aborted = 0, admitted = 0;
  for (auto& f : streams) {
    auto r = f.get();
    if (r.status == 503) continue;  // arrived after the drain began: refused, as it should be
    ++admitted;
    std::string finish;
    stream_text(r, &finish);  // every admitted stream ends with a final event and [DONE]
    EXPECT_TRUE(finish == "abort" || finish == "length") << finish;
    aborted += finish == "abort";
  }
  EXPECT_GE(admitted, 8);
  EXPECT_GE(aborted, 4);  // at least the queued ones
  EXPECT_EQ(s.wait_exit(30s), 0) << s.log_text();
  const std::string log = s.log_text();
  EXPECT_NE(log.find("draining"), std::string::npos) << log;
  EXPECT_NE(log.find("stopped"), std::string::npos) << log;
}

// Every checkpoint kind serves, a Llama model among them (difftx export hf -> import hf).
TEST(ServeEndToEndProcess, EveryCheckpointKind) {
  const fs::path softmax = tiny_checkpoint("softmax");
  const fs::path hf = work_dir() / "hf_llama";
  const fs::path imported = work_dir() / "imported_llama";
  auto e = run_command(difftx::testing::cli() + " export hf --checkpoint " +
                       difftx::resolve_checkpoint(softmax).string() + " --out " + hf.string());
  ASSERT_EQ(e.status, 0) << e.output;
  auto i = run_command(difftx::testing::cli() + " import hf --in " + hf.string() + " --out " +
                       imported.string());
  ASSERT_EQ(i.status, 0) << i.output;
  const std::vector<std::pair<fs::path, std::string>> kinds = {
      {tiny_checkpoint("diff_v2"), "diff_v2"}, {softmax, "softmax"}, {imported, "softmax"}};
  for (const auto& [dir, attention] : kinds) {
    ServerProcess s(difftx::testing::cli(), {"--checkpoint", dir.string(), "--model-name", "m"},
                    log_path("kind_" + dir.filename().string()));
    httplib::Client c("127.0.0.1", s.port());
    auto models = c.Get("/v1/models");
    ASSERT_TRUE(models);
    EXPECT_EQ(json::parse(models->body)["data"][0]["difftx"]["attention"], attention) << dir;
    auto r = c.Post("/v1/completions",
                    R"({"model":"m","prompt":"the cat","max_tokens":4,"temperature":0})",
                    "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << dir << ": " << r->body;
    EXPECT_GE(json::parse(r->body)["usage"]["completion_tokens"].get<int>(), 1);
  }
}

TEST(ServeEndToEndProcess, BadOptionsEndWithOneErrorLine) {
  auto missing = run_command(difftx::testing::cli() + " serve --checkpoint " +
                             (work_dir() / "nope").string() + " --port 0");
  EXPECT_EQ(missing.status, 1) << missing.output;
  EXPECT_NE(missing.output.find("difftx: error: "), std::string::npos) << missing.output;
  auto port = run_command(difftx::testing::cli() + " serve --checkpoint " +
                          tiny_checkpoint("diff_v1").string() + " --port 70000");
  EXPECT_EQ(port.status, 1) << port.output;
  EXPECT_NE(port.output.find("--port"), std::string::npos) << port.output;
}

}  // namespace
}  // namespace difftx::serve
