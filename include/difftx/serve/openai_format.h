// The OpenAI wire format of responses: completion and chat completion objects, their streamed
// chunks, usage, and the two log-probability layouts (completions: parallel arrays; chat: a
// list of entries with bytes), plus server-sent-event framing.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "difftx/serve/choice_state.h"
#include "difftx/serve/request.h"

namespace difftx::serve {

// Identity shared by the response and every chunk of one request.
struct ResponseIdentity {
  Endpoint endpoint = Endpoint::completions;
  std::string id;            // "cmpl-..." or "chatcmpl-..."
  std::int64_t created = 0;  // Unix seconds
  std::string model;
};

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
};

nlohmann::json usage_json(const Usage& usage);

// Log probabilities of `entries` in the endpoint's layout.
nlohmann::json logprobs_json(Endpoint endpoint, const std::vector<LogprobEntry>& entries);

// One finished choice of a non-streamed response.
struct ChoiceResult {
  std::string text;
  std::string finish_reason;
  bool with_logprobs = false;
  std::vector<LogprobEntry> logprobs;
};

nlohmann::json response_json(const ResponseIdentity& id, const std::vector<ChoiceResult>& choices,
                             const Usage& usage);

// A streamed chunk for choice `index`: its new text, log probabilities (or null) and finish
// reason ("" = still running). `first` adds the chat delta's role. `with_usage_field` adds
// "usage": null (stream_options.include_usage).
nlohmann::json chunk_json(const ResponseIdentity& id, int index, const std::string& text,
                          const nlohmann::json& logprobs, const std::string& finish_reason,
                          bool first, bool with_usage_field);

// The final chunk of stream_options.include_usage: no choices, the usage.
nlohmann::json usage_chunk_json(const ResponseIdentity& id, const Usage& usage);

// "data: <json>\n\n" and the terminator "data: [DONE]\n\n".
std::string sse_event(const nlohmann::json& payload);
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

}  // namespace difftx::serve
