// From a parsed request to engine requests: the chat template, tokenisation (the prompt-prefix
// id first), the context-length check, the token budget, sampling and seeds per choice.
// Pure given the codec and template (the fallback seed is passed in), so it is fuzzable too.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "difftx/engine/engine.h"
#include "difftx/serve/api_error.h"
#include "difftx/serve/chat_template.h"
#include "difftx/serve/request.h"
#include "difftx/serve/text_codec.h"

namespace difftx::serve {

inline constexpr int kDefaultCompletionMaxTokens = 16;  // OpenAI's default for /v1/completions

struct PreparedChoice {
  int prompt_index = 0;     // which prompt of the request
  engine::Request request;  // prompt ids (prefix id first), budget, sampling
};

struct PreparedRequest {
  std::vector<PreparedChoice> choices;  // index i answers as choice i
  std::vector<std::string> stop;        // the request's stop strings (+ the template's for chat)
  bool ignore_eos = false;
  bool logprobs = false;
  int prompt_tokens = 0;  // usage: tokens of every prompt, each counted once
};

// `context`: the model's max_seq_len. `fallback_seed`: the seed when the request has none
// (choice i samples with seed + i). Errors: 400 context_length_exceeded (param "prompt" or
// "messages") when a prompt leaves no room for one generated token; 400 for text the
// tokenizer refuses.
std::variant<PreparedRequest, ApiError> prepare_request(const ParsedRequest& request,
                                                        const TextCodec& codec,
                                                        const ChatTemplate& chat, int context,
                                                        std::uint64_t fallback_seed);

}  // namespace difftx::serve
