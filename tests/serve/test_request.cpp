// The request parser and prepare_request: valid requests give the expected fields and engine
// requests; every case of the bad-request corpus gives its 4xx with an OpenAI error object.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "difftx/serve/prepare.h"
#include "difftx/serve/request.h"
#include "serve_test_util.h"

namespace difftx::serve {
namespace {

using testing::tiny_codec;
using testing::tiny_limits;

ParsedRequest parse_ok(Endpoint endpoint, const std::string& body,
                       const RequestLimits& limits = tiny_limits()) {
  ParseResult r = parse_request(endpoint, body, limits);
  if (auto* e = std::get_if<ApiError>(&r)) {
    ADD_FAILURE() << "unexpected error for " << body << ": " << e->message;
    return {};
  }
  return std::get<ParsedRequest>(r);
}

ApiError parse_error(Endpoint endpoint, const std::string& body,
                     const RequestLimits& limits = tiny_limits()) {
  ParseResult r = parse_request(endpoint, body, limits);
  if (!std::holds_alternative<ApiError>(r)) {
    ADD_FAILURE() << "expected an error for " << body;
    return {};
  }
  return std::get<ApiError>(r);
}

TEST(ServeRequest, CompletionDefaultsAndFields) {
  auto r = parse_ok(Endpoint::completions, R"({"model":"tiny","prompt":"The cat"})");
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_EQ(r.prompts[0].text, "The cat");
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_DOUBLE_EQ(r.temperature, 1.0);
  EXPECT_DOUBLE_EQ(r.top_p, 1.0);
  EXPECT_EQ(r.n, 1);
  EXPECT_FALSE(r.stream);

  r = parse_ok(
      Endpoint::completions,
      R"({"model":"tiny","prompt":["a","b"],"max_tokens":7,"temperature":0,"top_p":0.9,"top_k":5,
                   "seed":42,"stop":["\n","END"],"stream":true,"stream_options":{"include_usage":true},
                   "logprobs":3,"n":2,"ignore_eos":true,"user":"u","frequency_penalty":0,"logit_bias":{}})");
  ASSERT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_EQ(r.temperature, 0.0);
  EXPECT_DOUBLE_EQ(r.top_p, 0.9);
  EXPECT_EQ(r.top_k, 5);
  EXPECT_EQ(r.seed, 42u);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n", "END"}));
  EXPECT_TRUE(r.stream && r.include_usage && r.logprobs && r.ignore_eos);
  EXPECT_EQ(r.top_logprobs, 3);
  EXPECT_EQ(r.choice_count(), 4);
}

TEST(ServeRequest, TokenIdPromptsAndModelDefault) {
  auto r = parse_ok(Endpoint::completions, R"({"prompt":[5,6,7]})");
  EXPECT_EQ(r.model, "tiny");  // absent model: the served one
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_TRUE(r.prompts[0].is_ids);
  EXPECT_EQ(r.prompts[0].ids, (std::vector<std::int32_t>{5, 6, 7}));
  r = parse_ok(Endpoint::completions, R"({"prompt":[[5],[6,7]], "top_k": -1})");
  ASSERT_EQ(r.prompts.size(), 2u);
  EXPECT_EQ(r.top_k, 0);
}

TEST(ServeRequest, ChatMessages) {
  auto r = parse_ok(Endpoint::chat_completions,
                    R"({"model":"tiny","messages":[{"role":"developer","content":"be brief"},
                       {"role":"user","content":[{"type":"text","text":"hel"},{"type":"text","text":"lo"}]},
                       {"role":"assistant","content":"hi"}],"max_completion_tokens":9,"logprobs":true,
                       "top_logprobs":2,"tool_choice":"none","response_format":{"type":"text"}})");
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "hello");
  EXPECT_EQ(r.max_tokens, 9);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 2);
}

TEST(ServeRequest, ErrorsNameTheField) {
  ApiError e = parse_error(Endpoint::completions, R"({"prompt":"a","max_tokens":0})");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "max_tokens");
  EXPECT_NE(e.message.find("[1, 63]"), std::string::npos) << e.message;
  e = parse_error(Endpoint::completions, R"({"prompt":"a","model":"nope"})");
  EXPECT_EQ(e.status, 404);
  EXPECT_EQ(e.code, "model_not_found");
  e = parse_error(Endpoint::completions, R"({"prompt":"a","max_tokns":3})");
  EXPECT_EQ(e.param, "max_tokns");
  e = parse_error(Endpoint::completions, "{\"prompt\": ");
  EXPECT_EQ(e.code, "invalid_json");
  const auto j = e.to_json();
  EXPECT_TRUE(j["error"]["message"].is_string());
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_TRUE(j["error"]["param"].is_null());
}

// Names taken from the request are quoted with control characters escaped and cut at 100 bytes,
// so every message stays one line (a fuzz finding: an unknown field "pres\nce_penaltY").
TEST(ServeRequest, QuotedNamesStayOnOneLine) {
  const std::vector<std::pair<Endpoint, std::string>> cases = {
      {Endpoint::completions, R"({"prompt":"a","pres\nce_penaltY":"x"})"},
      {Endpoint::completions, R"({"prompt":"a","model":"ti\rny\n"})"},
      {Endpoint::chat_completions, R"({"messages":[{"role":"us\ner","content":"x"}]})"},
      {Endpoint::completions, "{\"prompt\":\"a\",\"" + std::string(5000, 'k') + "\":1}"}};
  for (const auto& [endpoint, body] : cases) {
    const ApiError e = parse_error(endpoint, body);
    EXPECT_EQ(e.message.find('\n'), std::string::npos) << e.message;
    EXPECT_EQ(e.message.find('\r'), std::string::npos) << e.message;
    EXPECT_LT(e.message.size(), 400u) << e.message;
  }
  EXPECT_NE(parse_error(Endpoint::completions, cases[0].second).message.find("pres\\nce_penaltY"),
            std::string::npos);
}

TEST(ServeRequest, PrepareBuildsEngineRequests) {
  const TextCodec& codec = tiny_codec();
  ChatTemplate chat;
  auto r = parse_ok(Endpoint::completions,
                    R"({"prompt":["the cat","a dog"],"n":2,"seed":10,"temperature":0.5,
                                                "max_tokens":5,"stop":"."})");
  auto p = prepare_request(r, codec, chat, 64, 999);
  ASSERT_TRUE(std::holds_alternative<PreparedRequest>(p));
  const auto& prepared = std::get<PreparedRequest>(p);
  ASSERT_EQ(prepared.choices.size(), 4u);
  const auto ids = codec.encode("the cat");
  EXPECT_EQ(prepared.choices[0].request.prompt.front(), codec.prompt_prefix_id());
  EXPECT_EQ(prepared.choices[0].request.prompt.size(), ids.size() + 1);
  EXPECT_EQ(prepared.choices[1].request.prompt, prepared.choices[0].request.prompt);
  EXPECT_EQ(prepared.choices[2].prompt_index, 1);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(prepared.choices[i].request.sampling.seed, 10 + i);  // distinct seeds per choice
    EXPECT_EQ(prepared.choices[i].request.max_new_tokens, 5);
    EXPECT_DOUBLE_EQ(prepared.choices[i].request.sampling.temperature, 0.5);
  }
  EXPECT_EQ(prepared.prompt_tokens, int(prepared.choices[0].request.prompt.size() +
                                        prepared.choices[2].request.prompt.size()));
  EXPECT_EQ(prepared.stop, std::vector<std::string>{"."});

  // The budget is capped by the context; chat defaults to the rest of the context and adds the
  // template's stop strings.
  auto c =
      parse_ok(Endpoint::chat_completions, R"({"messages":[{"role":"user","content":"the cat"}]})");
  auto pc = prepare_request(c, codec, chat, 64, 7);
  ASSERT_TRUE(std::holds_alternative<PreparedRequest>(pc));
  const auto& chat_prepared = std::get<PreparedRequest>(pc);
  const int length = int(chat_prepared.choices[0].request.prompt.size());
  EXPECT_EQ(chat_prepared.choices[0].request.max_new_tokens, 64 - length);
  EXPECT_EQ(chat_prepared.choices[0].request.sampling.seed, 7u);
  EXPECT_EQ(chat_prepared.stop, chat.stop);
  EXPECT_EQ(codec.decode(chat_prepared.choices[0].request.prompt), "User: the cat\nAssistant:");
}

TEST(ServeRequest, PrepareRefusesPromptsThatFillTheContext) {
  const TextCodec& codec = tiny_codec();
  ChatTemplate chat;
  std::vector<std::int32_t> ids(62, 270);  // + the prefix id = 63 = context - 1: fits
  nlohmann::json body = {{"prompt", ids}, {"max_tokens", 10}};
  auto r = parse_ok(Endpoint::completions, body.dump());
  auto p = prepare_request(r, codec, chat, 64, 1);
  ASSERT_TRUE(std::holds_alternative<PreparedRequest>(p));
  EXPECT_EQ(std::get<PreparedRequest>(p).choices[0].request.max_new_tokens, 1);
  ids.push_back(270);
  body["prompt"] = ids;
  auto q = prepare_request(parse_ok(Endpoint::completions, body.dump()), codec, chat, 64, 1);
  ASSERT_TRUE(std::holds_alternative<ApiError>(q));
  EXPECT_EQ(std::get<ApiError>(q).code, "context_length_exceeded");
  EXPECT_EQ(std::get<ApiError>(q).param, "prompt");
}

// Every corpus case is refused by the parser or by prepare_request, with its status.
TEST(ServeRequest, BadRequestCorpus) {
  const auto cases = testing::bad_request_corpus();
  ASSERT_GE(cases.size(), 50u);
  ChatTemplate chat;
  for (const auto& c : cases) {
    const Endpoint endpoint =
        c.endpoint == "completions" ? Endpoint::completions : Endpoint::chat_completions;
    ParseResult r = parse_request(endpoint, c.body, tiny_limits());
    std::optional<ApiError> error;
    if (auto* e = std::get_if<ApiError>(&r)) {
      error = *e;
    } else {
      auto p = prepare_request(std::get<ParsedRequest>(r), tiny_codec(), chat, 64, 1);
      if (auto* e2 = std::get_if<ApiError>(&p)) error = *e2;
    }
    ASSERT_TRUE(error.has_value()) << "accepted: " << c.why;
    EXPECT_EQ(error->status, c.status) << c.why << ": " << error->message;
    EXPECT_FALSE(error->message.empty()) << c.why;
  }
}

// Bytes that are not a request at all never escape as exceptions (the fuzzing contract).
TEST(ServeRequest, ArbitraryBytesNeverThrow) {
  std::string bytes;
  std::uint64_t x = 88172645463325252ULL;
  for (int round = 0; round < 2000; ++round) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    bytes.push_back(static_cast<char>(x & 0xFF));
    if (bytes.size() > 64) bytes.erase(0, 1);
    const std::string body = (round % 3 == 0) ? "{\"prompt\":\"" + bytes + "\"}" : bytes;
    ParseResult r = parse_request(round % 2 ? Endpoint::completions : Endpoint::chat_completions,
                                  body, tiny_limits());
    if (auto* e = std::get_if<ApiError>(&r)) {
      EXPECT_GE(e->status, 400);
    }
  }
}

}  // namespace
}  // namespace difftx::serve
