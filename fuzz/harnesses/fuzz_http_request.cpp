// Fuzz harness: the body of a POST /v1/completions or /v1/chat/completions request, as the
// server's request parser reads it (serve/request.h), then the chat template and the error reply.
// The first byte picks the endpoint; the rest is the body. The parser never throws: it returns
// a request that keeps every documented limit, or an OpenAI error with a 4xx status and a
// one-line message. Anything else aborts (a finding).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "difftx/serve/api_error.h"
#include "difftx/serve/chat_template.h"
#include "difftx/serve/request.h"
#include "fuzz_common.h"

namespace {

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "http_request: %s\n", what);
  std::abort();
}

// The limits of the test server (tests/serve): model "tiny", context 64, vocabulary 330.
const difftx::serve::RequestLimits& limits() {
  static const difftx::serve::RequestLimits l = [] {
    difftx::serve::RequestLimits r;
    r.model_names = {"tiny"};
    r.context = 64;
    r.vocab_size = 330;
    return r;
  }();
  return l;
}

void check_request(const difftx::serve::ParsedRequest& r) {
  const auto& l = limits();
  if (r.model != "tiny") finding("accepted a model that is not served");
  if (r.choice_count() < 1 || r.choice_count() > l.max_choices)
    finding("choice count out of range");
  if (r.max_tokens && (*r.max_tokens < 1 || *r.max_tokens > l.context - 1))
    finding("max_tokens out of range");
  if (!(r.temperature >= 0 && r.temperature <= 2)) finding("temperature out of range");
  if (!(r.top_p > 0 && r.top_p <= 1)) finding("top_p out of range");
  if (r.top_k < 0) finding("negative top_k");
  if (r.top_logprobs < 0 || r.top_logprobs > 20) finding("top_logprobs out of range");
  if (static_cast<int>(r.stop.size()) > l.max_stop) finding("too many stop strings");
  for (const auto& s : r.stop)
    if (s.empty() || s.size() > l.max_stop_bytes) finding("stop string empty or too long");
  if (r.endpoint == difftx::serve::Endpoint::completions) {
    if (r.prompts.empty()) finding("completions request without a prompt");
    for (const auto& p : r.prompts)
      for (const auto id : p.ids)
        if (id < 0 || id >= l.vocab_size) finding("token id outside the vocabulary");
  } else {
    if (r.messages.empty()) finding("chat request without messages");
    const std::string text = difftx::serve::ChatTemplate{}.render(r.messages);
    if (text.empty()) finding("chat template rendered nothing");
  }
}

void check_error(const difftx::serve::ApiError& e) {
  if (e.status < 400 || e.status > 499) finding("error status is not 4xx");
  if (e.message.empty() || e.message.find('\n') != std::string::npos)
    finding("error message is empty or not one line");
  // The reply body must serialize whatever bytes the message quotes.
  if (difftx::serve::dump_json(e.to_json()).empty()) finding("error reply serialized to nothing");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto endpoint = (data[0] & 1) ? difftx::serve::Endpoint::chat_completions
                                      : difftx::serve::Endpoint::completions;
  const auto result =
      difftx::serve::parse_request(endpoint, difftx::fuzz::as_text(data + 1, size - 1), limits());
  if (const auto* request = std::get_if<difftx::serve::ParsedRequest>(&result)) {
    check_request(*request);
  } else {
    check_error(std::get<difftx::serve::ApiError>(result));
  }
  return 0;
}
