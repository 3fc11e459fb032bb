// The request parser of `difftx serve`: the bytes of a POST /v1/completions or
// /v1/chat/completions body -> a validated request, or the OpenAI-style error to answer with.
//
// A pure function (no I/O, no globals, no tokenizer; it never throws), so it can be fuzzed:
//   ParseResult parse_request(Endpoint, std::string_view body, const RequestLimits&) noexcept
// Checks done here: JSON syntax and nesting depth, the top level is an object, every field's
// type and range, unknown and unsupported fields, the model name, token ids below the
// vocabulary size, NUL characters in text. Checks that need the tokenizer (prompt length
// against the context) are done by prepare_request (prepare.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "difftx/serve/api_error.h"

namespace difftx::serve {

enum class Endpoint { completions, chat_completions };
const char* endpoint_name(Endpoint endpoint);  // "completions" or "chat_completions"

struct ChatMessage {
  std::string role;     // system, user or assistant ("developer" is read as system)
  std::string content;  // text parts joined
};

// One prompt of a completions request: text, or token ids given directly.
struct PromptInput {
  bool is_ids = false;
  std::string text;
  std::vector<std::int32_t> ids;
};

struct RequestLimits {
  std::vector<std::string> model_names;  // accepted values of "model" (absent "model": the first)
  int context = 0;                       // the model's max_seq_len, in tokens
  int vocab_size = 0;                    // token ids in prompts must be below it
  int max_choices = 16;                  // prompts x n, at most
  int max_stop = 4;                      // stop strings, at most
  std::size_t max_stop_bytes = 256;      // bytes per stop string, at most
  int max_json_depth = 32;               // nesting of arrays and objects, at most
};

struct ParsedRequest {
  Endpoint endpoint = Endpoint::completions;
  std::string model;
  std::vector<PromptInput> prompts;   // completions: one per prompt (>= 1)
  std::vector<ChatMessage> messages;  // chat: >= 1
  std::optional<int> max_tokens;      // in [1, context - 1]; absent: the endpoint's default
  double temperature = 1.0;           // [0, 2]; 0 = greedy
  double top_p = 1.0;                 // (0, 1]
  int top_k = 0;                      // >= 0, 0 = off (extension; -1 is read as 0)
  std::optional<std::uint64_t> seed;  // absent: the server draws one
  std::vector<std::string> stop;      // non-empty strings
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  bool logprobs = false;       // report the sampled tokens' log-probabilities
  int top_logprobs = 0;        // alternatives per token, 0 .. 20
  int n = 1;                   // choices per prompt
  bool ignore_eos = false;     // extension: keep generating past the end-of-text token

  int choice_count() const;  // prompts x n (chat: n)
};

using ParseResult = std::variant<ParsedRequest, ApiError>;

ParseResult parse_request(Endpoint endpoint, std::string_view body,
                          const RequestLimits& limits) noexcept;

}  // namespace difftx::serve
