// The HTTP front end in-process (FakeGenerator -> Scheduler -> HttpServer on a free port),
// through cpp-httplib's client: states, routes, auth, the response and stream layouts, 429,
// oversized bodies, the bad-request corpus beside a good stream, disconnects, timeouts, stop
// strings, several choices and engine failures.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "serve_test_util.h"

namespace difftx::serve {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::FakeGenerator;
using testing::FakeGeneratorOptions;
using testing::post_stream;
using testing::TestServer;
using testing::tiny_codec;

// The text the fake generator produces for a prompt (the tiny codec's ids), greedy, seed 0.
std::string expected_text(const std::string& prompt, int tokens, const FakeGeneratorOptions& o,
                          std::vector<std::int32_t>* ids_out = nullptr) {
  engine::Request r;
  r.prompt = {tiny_codec().prompt_prefix_id()};
  for (auto id : tiny_codec().encode(prompt)) r.prompt.push_back(id);
  r.sampling.temperature = 0;
  std::vector<std::int32_t> ids;
  for (int i = 0; i < tokens; ++i) ids.push_back(FakeGenerator::token_at(r, i, o));
  if (ids_out) *ids_out = ids;
  std::vector<std::int32_t> all = r.prompt;
  const std::string prefix = tiny_codec().decode(all);
  all.insert(all.end(), ids.begin(), ids.end());
  return tiny_codec().decode(all).substr(prefix.size());
}

json post_json(TestServer& s, const std::string& path, const json& body, int* status = nullptr) {
  auto c = s.client();
  auto res = c->Post(path.c_str(), body.dump(), "application/json");
  EXPECT_TRUE(res) << "no response";
  if (!res) return {};
  if (status) *status = res->status;
  return json::parse(res->body);
}

TEST(ServeHttp, HealthAndModelsFollowTheLoadingState) {
  TestServer s({}, {}, 32, 0ms, /*ready=*/false);
  auto c = s.client();
  auto h = c->Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 503);
  EXPECT_EQ(json::parse(h->body)["status"], "loading");
  int status = 0;
  auto body = post_json(s, "/v1/completions", {{"prompt", "the cat"}}, &status);
  EXPECT_EQ(status, 503);
  EXPECT_EQ(body["error"]["code"], "model_loading");
  s.make_ready();
  h = c->Get("/health");
  EXPECT_EQ(h->status, 200);
  auto models = c->Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 200);
  auto m = json::parse(models->body);
  EXPECT_EQ(m["object"], "list");
  EXPECT_EQ(m["data"][0]["id"], "tiny");
  EXPECT_EQ(m["data"][0]["max_model_len"], 64);
  EXPECT_EQ(c->Get("/v1/models/tiny")->status, 200);
  auto missing = c->Get("/v1/models/other");
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(json::parse(missing->body)["error"]["code"], "model_not_found");
  auto metrics = c->Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("difftx_requests_total{endpoint=\"health\",code=\"503\"} 1"),
            std::string::npos);
  EXPECT_NE(metrics->get_header_value("Content-Type").find("text/plain"), std::string::npos);
}

TEST(ServeHttp, CompletionResponse) {
  TestServer s;
  int status = 0;
  auto r = post_json(s, "/v1/completions",
                     {{"model", "tiny"},
                      {"prompt", "the cat"},
                      {"max_tokens", 6},
                      {"temperature", 0},
                      {"logprobs", 2}},
                     &status);
  ASSERT_EQ(status, 200) << r.dump();
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["model"], "tiny");
  EXPECT_EQ(r["id"].get<std::string>().rfind("cmpl-", 0), 0u);
  EXPECT_EQ(r["choices"][0]["text"], expected_text("the cat", 6, s.generator.options()));
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  const int prompt_tokens = int(tiny_codec().encode("the cat").size()) + 1;
  EXPECT_EQ(r["usage"]["prompt_tokens"], prompt_tokens);
  EXPECT_EQ(r["usage"]["completion_tokens"], 6);
  EXPECT_EQ(r["usage"]["total_tokens"], prompt_tokens + 6);
  const auto& lp = r["choices"][0]["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), 6u);
  EXPECT_EQ(lp["top_logprobs"][0].size(), 2u);
  EXPECT_FLOAT_EQ(lp["token_logprobs"][1].get<float>(), -0.51f);
}

TEST(ServeHttp, ChatStreamMatchesTheNonStreamedAnswer) {
  TestServer s;
  const json messages = json::array({{{"role", "user"}, {"content", "the dog"}}});
  int status = 0;
  auto whole = post_json(s, "/v1/chat/completions",
                         {{"messages", messages}, {"max_tokens", 8}, {"temperature", 0}}, &status);
  ASSERT_EQ(status, 200) << whole.dump();
  EXPECT_EQ(whole["object"], "chat.completion");
  EXPECT_EQ(whole["choices"][0]["message"]["role"], "assistant");

  json req = {{"messages", messages},
              {"max_tokens", 8},
              {"temperature", 0},
              {"stream", true},
              {"stream_options", {{"include_usage", true}}}};
  auto stream = post_stream("127.0.0.1", s.port, "/v1/chat/completions", req.dump());
  ASSERT_EQ(stream.status, 200);
  ASSERT_GE(stream.events.size(), 4u);
  EXPECT_EQ(stream.events.back(), "[DONE]");
  std::string content;
  std::string finish;
  for (std::size_t i = 0; i + 2 < stream.events.size(); ++i) {
    auto chunk = json::parse(stream.events[i]);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    EXPECT_TRUE(chunk["usage"].is_null());
    if (i == 0) {
      EXPECT_EQ(chunk["choices"][0]["delta"]["role"], "assistant");
    }
    if (chunk["choices"][0]["delta"].contains("content"))
      content += chunk["choices"][0]["delta"]["content"];
    if (!chunk["choices"][0]["finish_reason"].is_null())
      finish = chunk["choices"][0]["finish_reason"];
  }
  auto usage = json::parse(stream.events[stream.events.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"], whole["usage"]);
  EXPECT_EQ(content, whole["choices"][0]["message"]["content"]);
  EXPECT_EQ(finish, whole["choices"][0]["finish_reason"]);
}

TEST(ServeHttp, SeveralPromptsAndChoices) {
  TestServer s;
  int status = 0;
  auto r = post_json(
      s, "/v1/completions",
      {{"prompt", {"the cat", "a dog"}}, {"n", 2}, {"max_tokens", 4}, {"temperature", 0}}, &status);
  ASSERT_EQ(status, 200) << r.dump();
  ASSERT_EQ(r["choices"].size(), 4u);
  EXPECT_EQ(r["choices"][0]["text"], expected_text("the cat", 4, s.generator.options()));
  EXPECT_EQ(r["choices"][1]["text"], r["choices"][0]["text"]);  // greedy: the same
  EXPECT_EQ(r["choices"][3]["text"], expected_text("a dog", 4, s.generator.options()));
  EXPECT_EQ(r["choices"][3]["index"], 3);
  EXPECT_EQ(r["usage"]["completion_tokens"], 16);
}

TEST(ServeHttp, StopStringCutsTheTextAndFreesTheSequence) {
  TestServer s;
  const std::string full = expected_text("the cat", 20, s.generator.options());
  ASSERT_GT(full.size(), 8u);
  const std::string stop = full.substr(full.size() / 2, 3);
  const std::string before = full.substr(0, full.find(stop));
  int status = 0;
  auto r = post_json(
      s, "/v1/completions",
      {{"prompt", "the cat"}, {"max_tokens", 20}, {"temperature", 0}, {"stop", stop}}, &status);
  ASSERT_EQ(status, 200);
  EXPECT_EQ(r["choices"][0]["text"], before);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(s.scheduler.wait_idle(5s));
  EXPECT_EQ(s.generator.open_sequences(), 0);
}

TEST(ServeHttp, AuthenticationWithABearerKey) {
  HttpOptions http;
  http.api_key = "sekrit";
  TestServer s({}, http);
  auto c = s.client();
  const std::string body = json{{"prompt", "the cat"}, {"max_tokens", 2}}.dump();
  auto none = c->Post("/v1/completions", body, "application/json");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 401);
  EXPECT_EQ(json::parse(none->body)["error"]["type"], "authentication_error");
  auto wrong =
      c->Post("/v1/completions", {{"Authorization", "Bearer nope"}}, body, "application/json");
  EXPECT_EQ(wrong->status, 401);
  auto right =
      c->Post("/v1/completions", {{"Authorization", "Bearer sekrit"}}, body, "application/json");
  EXPECT_EQ(right->status, 200);
  EXPECT_EQ(c->Get("/v1/models")->status, 401);
  EXPECT_EQ(c->Get("/v1/models", {{"Authorization", "Bearer sekrit"}})->status, 200);
  EXPECT_EQ(c->Get("/health")->status, 200);  // health and metrics stay open
}

TEST(ServeHttp, RoutesAndBodyLimitAnswerWithErrorObjects) {
  HttpOptions http;
  http.max_body_bytes = 4096;
  TestServer s({}, http);
  auto c = s.client();
  auto big = c->Post("/v1/completions", json{{"prompt", std::string(10000, 'a')}}.dump(),
                     "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(json::parse(big->body)["error"]["code"], "request_too_large");
  auto nowhere = c->Get("/v2/everything");
  ASSERT_TRUE(nowhere);
  EXPECT_EQ(nowhere->status, 404);
  EXPECT_EQ(json::parse(nowhere->body)["error"]["code"], "not_found");
  auto wrong_method = c->Get("/v1/completions");
  ASSERT_TRUE(wrong_method);
  EXPECT_GE(wrong_method->status, 400);
  EXPECT_LT(wrong_method->status, 500);
  EXPECT_TRUE(json::parse(wrong_method->body).contains("error"));
}

TEST(ServeHttp, FullQueueAnswers429WithRetryAfter) {
  FakeGeneratorOptions o;
  o.max_batch = 1;
  o.step_delay = 10ms;
  TestServer s(o, {}, /*max_queue=*/0);
  const json long_req = {{"prompt", "the cat"}, {"max_tokens", 40}, {"stream", true}};
  auto first = std::async(std::launch::async, [&] {
    return post_stream("127.0.0.1", s.port, "/v1/completions", long_req.dump());
  });
  for (int i = 0; i < 200 && s.scheduler.in_flight() == 0; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(s.scheduler.in_flight(), 1);
  auto c = s.client();
  auto res = c->Post("/v1/completions", json{{"prompt", "a"}, {"max_tokens", 2}}.dump(),
                     "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 429);
  EXPECT_EQ(res->get_header_value("Retry-After"), "1");
  EXPECT_EQ(json::parse(res->body)["error"]["type"], "rate_limit_error");
  auto done = first.get();
  EXPECT_EQ(done.events.back(), "[DONE]");
}

TEST(ServeHttp, BadRequestCorpusWhileAGoodStreamRuns) {
  FakeGeneratorOptions o;
  o.step_delay = 4ms;
  TestServer s(o);
  const json good = {
      {"prompt", "the river"}, {"max_tokens", 60}, {"temperature", 0}, {"stream", true}};
  auto stream = std::async(std::launch::async, [&] {
    return post_stream("127.0.0.1", s.port, "/v1/completions", good.dump());
  });
  const auto cases = testing::bad_request_corpus();
  ASSERT_GE(cases.size(), 50u);
  std::vector<std::future<void>> workers;
  for (int w = 0; w < 4; ++w) {
    workers.push_back(std::async(std::launch::async, [&, w] {
      auto c = s.client();
      for (std::size_t i = std::size_t(w); i < cases.size(); i += 4) {
        const auto& bad = cases[i];
        const std::string path =
            bad.endpoint == "completions" ? "/v1/completions" : "/v1/chat/completions";
        auto res = c->Post(path.c_str(), bad.body, "application/json");
        ASSERT_TRUE(res) << bad.why;
        EXPECT_EQ(res->status, bad.status) << bad.why << ": " << res->body;
        json j = json::parse(res->body, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << bad.why;
        EXPECT_TRUE(j["error"]["message"].is_string()) << bad.why;
        EXPECT_TRUE(j["error"]["type"].is_string()) << bad.why;
      }
    }));
  }
  for (auto& w : workers) w.get();
  auto result = stream.get();
  ASSERT_EQ(result.status, 200);
  ASSERT_FALSE(result.events.empty());
  EXPECT_EQ(result.events.back(), "[DONE]");
  std::string text;
  for (std::size_t i = 0; i + 1 < result.events.size(); ++i)
    text += json::parse(result.events[i])["choices"][0]["text"];
  EXPECT_EQ(text, expected_text("the river", 60, s.generator.options()));
}

TEST(ServeHttp, ClientDisconnectMidStreamCancelsTheGeneration) {
  FakeGeneratorOptions o;
  o.step_delay = 5ms;
  TestServer s(o);
  const json req = {{"prompt", "the cat"}, {"max_tokens", 60}, {"stream", true}};
  auto result =
      post_stream("127.0.0.1", s.port, "/v1/completions", req.dump(), /*stop_after_events=*/3);
  EXPECT_TRUE(result.aborted);
  for (int i = 0; i < 400 && s.generator.open_sequences() > 0; ++i)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(s.generator.open_sequences(), 0);
  EXPECT_EQ(s.generator.cancelled().size(), 1u);
  EXPECT_TRUE(s.scheduler.wait_idle(5s));
  EXPECT_NE(s.metrics.render().find("difftx_client_disconnects_total 1"), std::string::npos);
}

TEST(ServeHttp, ClientDisconnectWhileWaitingForANonStreamedAnswer) {
  FakeGeneratorOptions o;
  o.step_delay = 10ms;
  TestServer s(o);
  {
    httplib::Client c("127.0.0.1", s.port);
    c.set_read_timeout(0, 150'000);  // gives up after 150 ms and closes the connection
    auto res = c.Post("/v1/completions", json{{"prompt", "the cat"}, {"max_tokens", 60}}.dump(),
                      "application/json");
    EXPECT_FALSE(res);
  }
  for (int i = 0; i < 400 && s.generator.open_sequences() > 0; ++i)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(s.generator.open_sequences(), 0);
  EXPECT_EQ(s.generator.cancelled().size(), 1u);
}

TEST(ServeHttp, RequestTimeoutEndsWithTimeoutReason) {
  FakeGeneratorOptions o;
  o.step_delay = 10ms;
  TestServer s(o, {}, 32, /*request_timeout=*/100ms);
  int status = 0;
  auto r = post_json(s, "/v1/completions", {{"prompt", "the cat"}, {"max_tokens", 60}}, &status);
  ASSERT_EQ(status, 200) << r.dump();
  EXPECT_EQ(r["choices"][0]["finish_reason"], "timeout");
  EXPECT_LT(r["usage"]["completion_tokens"].get<int>(), 60);
}

TEST(ServeHttp, EngineFailureBecomesA500OrAnErrorEvent) {
  FakeGeneratorOptions o;
  o.step_delay = 5ms;
  TestServer s(o);
  s.generator.set_throw_on_step(true);
  int status = 0;
  auto r = post_json(s, "/v1/completions", {{"prompt", "the cat"}, {"max_tokens", 4}}, &status);
  EXPECT_EQ(status, 500);
  EXPECT_EQ(r["error"]["type"], "server_error");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("injected engine failure"),
            std::string::npos);

  // Failing mid-stream: the tokens so far, then an error event, then [DONE].
  s.generator.set_throw_on_step(false);
  auto breaker = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(80ms);
    s.generator.set_throw_on_step(true);
  });
  auto stream =
      post_stream("127.0.0.1", s.port, "/v1/completions",
                  json{{"prompt", "the cat"}, {"max_tokens", 60}, {"stream", true}}.dump());
  breaker.get();
  ASSERT_EQ(stream.status, 200);
  ASSERT_GE(stream.events.size(), 3u);
  EXPECT_TRUE(json::parse(stream.events[0]).contains("choices"));
  EXPECT_EQ(json::parse(stream.events[stream.events.size() - 2])["error"]["type"], "server_error");
  EXPECT_EQ(stream.events.back(), "[DONE]");

  // The server goes on serving.
  s.generator.set_throw_on_step(false);
  EXPECT_EQ(post_stream("127.0.0.1", s.port, "/v1/completions",
                        json{{"prompt", "the cat"}, {"max_tokens", 4}, {"stream", true}}.dump())
                .events.back(),
            "[DONE]");
}

TEST(ServeHttp, APortInUseIsAnError) {
  TestServer s;
  ServerMetrics metrics;
  HttpOptions taken;
  taken.port = s.port;
  HttpServer second(taken, metrics);
  try {
    second.bind();
    FAIL() << "a second server bound port " << s.port;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--port"), std::string::npos) << e.what();
  }
}

TEST(ServeHttp, DrainingRefusesNewRequests) {
  TestServer s;
  s.http.set_draining();
  auto c = s.client();
  EXPECT_EQ(c->Get("/health")->status, 503);
  int status = 0;
  auto r = post_json(s, "/v1/completions", {{"prompt", "the cat"}}, &status);
  EXPECT_EQ(status, 503);
  EXPECT_EQ(r["error"]["code"], "server_shutdown");
}

}  // namespace
}  // namespace difftx::serve
