// prepare_request: templates, tokenisation, context checks and per-choice engine requests.
#include "difftx/serve/prepare.h"

#include <fmt/format.h>

#include <algorithm>

#include "difftx/core/error.h"

namespace difftx::serve {

std::variant<PreparedRequest, ApiError> prepare_request(const ParsedRequest& request,
                                                        const TextCodec& codec,
                                                        const ChatTemplate& chat, int context,
                                                        std::uint64_t fallback_seed) {
  const bool is_chat = request.endpoint == Endpoint::chat_completions;
  const char* param = is_chat ? "messages" : "prompt";
  std::vector<std::vector<std::int32_t>> prompts;
  try {
    if (is_chat) {
      prompts.push_back(codec.encode(chat.render(request.messages)));
    } else {
      for (const auto& p : request.prompts)
        prompts.push_back(p.is_ids ? p.ids : codec.encode(p.text));
    }
  } catch (const Error& e) {
    return invalid_request(fmt::format("the {} cannot be tokenized: {}", param, e.what()), param);
  }

  PreparedRequest out;
  out.ignore_eos = request.ignore_eos;
  out.logprobs = request.logprobs;
  out.stop = request.stop;
  if (is_chat) out.stop.insert(out.stop.end(), chat.stop.begin(), chat.stop.end());
  const std::uint64_t seed = request.seed.value_or(fallback_seed);
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    std::vector<std::int32_t> ids;
    ids.reserve(prompts[p].size() + 1);
    ids.push_back(codec.prompt_prefix_id());
    ids.insert(ids.end(), prompts[p].begin(), prompts[p].end());
    const int length = static_cast<int>(ids.size());
    if (length > context - 1) {
      ApiError e = invalid_request(
          fmt::format(
              "the {} is {} tokens long (with the start token); this model's context is {} tokens, "
              "so a "
              "prompt may hold at most {} to leave room for one generated token: shorten it",
              param, length, context, context - 1),
          param, "context_length_exceeded");
      return e;
    }
    out.prompt_tokens += length;
    const int room = context - length;
    const int wanted = request.max_tokens.value_or(is_chat ? room : kDefaultCompletionMaxTokens);
    for (int k = 0; k < request.n; ++k) {
      PreparedChoice choice;
      choice.prompt_index = static_cast<int>(p);
      choice.request.prompt = ids;
      choice.request.max_new_tokens = std::max(1, std::min(wanted, room));
      choice.request.sampling.temperature = request.temperature;
      choice.request.sampling.top_p = request.top_p;
      choice.request.sampling.top_k = request.top_k;
      choice.request.sampling.seed = seed + out.choices.size();
      choice.request.stop_at_eos = !request.ignore_eos;
      choice.request.top_logprobs = request.logprobs ? request.top_logprobs : 0;
      out.choices.push_back(std::move(choice));
    }
  }
  return out;
}

}  // namespace difftx::serve
