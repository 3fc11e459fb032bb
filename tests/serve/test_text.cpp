// The text side of serving: stop strings, incremental detokenisation, token texts, the chat
// template, per-choice state and the OpenAI response / chunk / SSE layouts.
#include <gtest/gtest.h>

#include "difftx/serve/chat_template.h"
#include "difftx/serve/choice_state.h"
#include "difftx/serve/detokenizer.h"
#include "difftx/serve/openai_format.h"
#include "difftx/serve/stop_matcher.h"
#include "serve_test_util.h"

namespace difftx::serve {
namespace {

using testing::tiny_codec;

std::string feed_all(StopMatcher& m, const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += m.push(p);
  return out + m.finish();
}

TEST(ServeStopMatcher, CutsBeforeTheFirstStopAcrossPieces) {
  StopMatcher m({"END", "\n\n"});
  EXPECT_EQ(m.push("hello E"), "hello ");  // "E" may start "END": held
  EXPECT_EQ(m.push("N"), "");
  EXPECT_EQ(m.push("Dx"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.push("more"), "");
  EXPECT_EQ(m.finish(), "");

  StopMatcher held({"END"});
  EXPECT_EQ(feed_all(held, {"a E", "NoE", "N"}), "a ENoEN");  // false starts come back out
  EXPECT_FALSE(held.stopped());

  StopMatcher earliest({"b", "abc"});
  EXPECT_EQ(feed_all(earliest, {"xxab", "c"}), "xxa");
  StopMatcher none({});
  EXPECT_EQ(feed_all(none, {"a", "b"}), "ab");
}

TEST(ServeDetokenizer, PiecesConcatenateToTheWholeDecode) {
  const TextCodec& codec = tiny_codec();
  const std::vector<std::string> texts = {"the cat sees a dog. the river", "naïve café é",
                                          "jury\nsaid  city"};
  for (const auto& text : texts) {
    const auto ids = codec.encode(text);
    std::vector<std::int32_t> prompt = {codec.prompt_prefix_id()};
    prompt.push_back(ids[0]);
    IncrementalDetokenizer detok(codec, prompt);
    std::string streamed;
    for (std::size_t i = 1; i < ids.size(); ++i) {
      const std::string piece = detok.push(ids[i]);
      EXPECT_FALSE(ends_with_partial_character(piece))
          << "partial character emitted for '" << text << "'";
      streamed += piece;
    }
    streamed += detok.finish();
    const std::string whole = codec.decode(ids);
    EXPECT_EQ(codec.decode(std::vector<std::int32_t>{ids[0]}) + streamed, whole) << text;
  }
}

TEST(ServeDetokenizer, HoldsBackPartialUtf8FromByteTokens) {
  const TextCodec& codec = tiny_codec();
  // "€" (E2 82 AC) spelled as three byte tokens (ids 5 + byte).
  IncrementalDetokenizer detok(codec, std::vector<std::int32_t>{codec.prompt_prefix_id()});
  EXPECT_EQ(detok.push(data::kFirstByteId + 0xE2), "");
  EXPECT_EQ(detok.push(data::kFirstByteId + 0x82), "");
  EXPECT_EQ(detok.push(data::kFirstByteId + 0xAC), "\xE2\x82\xAC");
  EXPECT_TRUE(ends_with_partial_character("ab\xE2\x82"));
  EXPECT_TRUE(ends_with_partial_character("ab\xEF\xBF\xBD"));
  EXPECT_FALSE(ends_with_partial_character("ab\xE2\x82\xAC"));
}

TEST(ServeTextCodec, TokenTextsAndBytes) {
  const TextCodec& codec = tiny_codec();
  EXPECT_TRUE(codec.is_difftx());
  EXPECT_EQ(codec.eos_id(), data::kEosId);
  EXPECT_EQ(codec.token_text(data::kEosId), "");
  EXPECT_EQ(codec.token_bytes(data::kNewlineId), "\n");
  EXPECT_EQ(codec.token_text(data::kFirstByteId + 0xE2), "bytes:\\xe2");
  EXPECT_EQ(codec.token_bytes(data::kFirstByteId + 0xE2), "\xE2");
  const auto ids = codec.encode("the cat");
  std::string joined;
  for (auto id : ids) joined += codec.token_text(id);
  EXPECT_EQ(joined, "the cat");
  EXPECT_THROW(codec.token_text(100000), Error);
}

TEST(ServeChatTemplate, DefaultRenderingAndJson) {
  ChatTemplate t;
  std::vector<ChatMessage> m = {
      {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}};
  EXPECT_EQ(t.render(m), "Be brief.\n\nUser: Hi\nAssistant: Hello\nUser: Bye\nAssistant:");
  ChatTemplate custom =
      ChatTemplate::from_json({{"user_prefix", "<u>"}, {"stop", {"</s>"}}}, "test");
  EXPECT_EQ(custom.user_prefix, "<u>");
  EXPECT_EQ(custom.stop, std::vector<std::string>{"</s>"});
  EXPECT_EQ(custom.generation_prompt, "Assistant:");
  EXPECT_EQ(ChatTemplate::from_json(t.to_json(), "roundtrip").render(m), t.render(m));
  EXPECT_THROW(ChatTemplate::from_json({{"usr_prefix", "x"}}, "test"), Error);
  EXPECT_THROW(ChatTemplate::from_json({{"stop", "x"}}, "test"), Error);
}

engine::TokenEvent token(std::int32_t id,
                         engine::FinishReason finish = engine::FinishReason::none) {
  engine::TokenEvent e;
  e.token = id;
  e.logprob = -1.5f;
  e.top = {{id, -1.5f}, {5 + 'x', -2.0f}};
  e.finish = finish;
  return e;
}

TEST(ServeChoiceState, StopStringEndsTheChoiceAndAsksToCancel) {
  const TextCodec& codec = tiny_codec();
  const auto ids = codec.encode("the cat sees a dog");
  ChoiceState s(codec, {codec.prompt_prefix_id()}, {"sees"}, false, true);
  std::string text;
  bool cancel = false;
  for (auto id : ids) {
    ChoiceDelta d = s.on_event(token(id), "abort");
    text += d.text;
    cancel = cancel || d.cancel_engine;
    if (d.finished) break;
  }
  EXPECT_TRUE(s.finished());
  EXPECT_EQ(s.finish_reason(), "stop");
  EXPECT_TRUE(cancel);
  EXPECT_EQ(text, "the cat ");
  EXPECT_EQ(s.text(), "the cat ");
  EXPECT_EQ(s.logprobs().size(), std::size_t(s.completion_tokens()));
  EXPECT_TRUE(s.on_event(token(ids[0]), "abort").text.empty());  // later events are ignored
}

TEST(ServeChoiceState, FinishReasons) {
  const TextCodec& codec = tiny_codec();
  const auto ids = codec.encode("the cat");
  {
    ChoiceState s(codec, {codec.prompt_prefix_id()}, {}, false, false);
    s.on_event(token(ids[0]), "abort");
    ChoiceDelta d = s.on_event(token(ids[1], engine::FinishReason::length), "abort");
    EXPECT_TRUE(d.finished);
    EXPECT_EQ(d.finish_reason, "length");
    EXPECT_FALSE(d.cancel_engine);
    EXPECT_EQ(s.text(), "the cat");
    EXPECT_TRUE(s.logprobs().empty());
  }
  {
    ChoiceState s(codec, {codec.prompt_prefix_id()}, {}, false, false);
    ChoiceDelta d =
        s.on_event(token(data::kEosId), "abort");  // end-of-text not reported as eos yet
    EXPECT_EQ(d.finish_reason, "stop");
    EXPECT_TRUE(d.cancel_engine);
    EXPECT_EQ(s.completion_tokens(), 1);
  }
  {
    ChoiceState s(codec, {codec.prompt_prefix_id()}, {}, true, false);  // ignore_eos
    EXPECT_FALSE(s.on_event(token(data::kEosId), "abort").finished);
    engine::TokenEvent end;
    end.finish = engine::FinishReason::cancelled;
    EXPECT_EQ(s.on_event(end, "timeout").finish_reason, "timeout");
  }
}

TEST(ServeOpenAiFormat, ResponsesChunksAndSse) {
  ResponseIdentity id{Endpoint::chat_completions, "chatcmpl-1", 123, "tiny"};
  LogprobEntry e;
  e.sampled = {"A", "A", -0.5f};
  e.top = {{"A", "A", -0.5f}, {"B", "B", -1.0f}};
  auto r = response_json(id, {{"hi", "stop", true, {e}}}, Usage{3, 1});
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"]["content"], "hi");
  EXPECT_EQ(r["choices"][0]["logprobs"]["content"][0]["top_logprobs"][1]["token"], "B");
  EXPECT_EQ(r["choices"][0]["logprobs"]["content"][0]["bytes"], nlohmann::json::array({65}));
  EXPECT_EQ(r["usage"]["total_tokens"], 4);
  auto first = chunk_json(id, 0, "", nullptr, "", true, true);
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(first["usage"].is_null());
  auto last = chunk_json(id, 0, "", nullptr, "length", false, false);
  EXPECT_EQ(last["choices"][0]["delta"], nlohmann::json::object());
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");

  ResponseIdentity cid{Endpoint::completions, "cmpl-1", 123, "tiny"};
  auto lp = logprobs_json(Endpoint::completions, {e, e});
  EXPECT_EQ(lp["tokens"], nlohmann::json::array({"A", "A"}));
  EXPECT_EQ(lp["top_logprobs"][0]["B"], -1.0);
  auto chunk = chunk_json(cid, 1, "x", lp, "", false, false);
  EXPECT_EQ(chunk["object"], "text_completion");
  EXPECT_EQ(chunk["choices"][0]["text"], "x");
  EXPECT_EQ(chunk["choices"][0]["index"], 1);
  EXPECT_FALSE(chunk.contains("usage"));
  EXPECT_EQ(usage_chunk_json(cid, {2, 5})["choices"], nlohmann::json::array());
  EXPECT_EQ(sse_event({{"a", 1}}), "data: {\"a\":1}\n\n");
  // Invalid UTF-8 in text never makes serialisation throw.
  EXPECT_NO_THROW(sse_event(chunk_json(cid, 0, "bad \xFF byte", nullptr, "", false, false)));
}

}  // namespace
}  // namespace difftx::serve
