// OpenAI response objects, chunks, usage, log probabilities and SSE framing.
#include "difftx/serve/openai_format.h"

#include "difftx/serve/api_error.h"

namespace difftx::serve {
namespace {

using nlohmann::json;

const char* object_name(Endpoint endpoint, bool chunk) {
  if (endpoint == Endpoint::completions) return "text_completion";
  return chunk ? "chat.completion.chunk" : "chat.completion";
}

json bytes_array(const std::string& bytes) {
  json a = json::array();
  for (char c : bytes) a.push_back(static_cast<int>(static_cast<unsigned char>(c)));
  return a;
}

json header(const ResponseIdentity& id, bool chunk) {
  return {{"id", id.id},
          {"object", object_name(id.endpoint, chunk)},
          {"created", id.created},
          {"model", id.model},
          {"system_fingerprint", "difftx"}};
}

}  // namespace

json usage_json(const Usage& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
}

json logprobs_json(Endpoint endpoint, const std::vector<LogprobEntry>& entries) {
  if (endpoint == Endpoint::completions) {
    json tokens = json::array(), token_logprobs = json::array(), top = json::array(),
         offsets = json::array();
    for (const auto& e : entries) {
      tokens.push_back(e.sampled.token);
      token_logprobs.push_back(e.sampled.logprob);
      json alts = json::object();
      for (const auto& a : e.top) alts[a.token] = a.logprob;
      top.push_back(alts);
      offsets.push_back(e.text_offset);
    }
    return {{"tokens", tokens},
            {"token_logprobs", token_logprobs},
            {"top_logprobs", top},
            {"text_offset", offsets}};
  }
  json content = json::array();
  for (const auto& e : entries) {
    json alts = json::array();
    for (const auto& a : e.top) {
      alts.push_back({{"token", a.token}, {"logprob", a.logprob}, {"bytes", bytes_array(a.bytes)}});
    }
    content.push_back({{"token", e.sampled.token},
                       {"logprob", e.sampled.logprob},
                       {"bytes", bytes_array(e.sampled.bytes)},
                       {"top_logprobs", alts}});
  }
  return {{"content", content}};
}

json response_json(const ResponseIdentity& id, const std::vector<ChoiceResult>& choices,
                   const Usage& usage) {
  json out = header(id, false);
  json list = json::array();
  for (std::size_t i = 0; i < choices.size(); ++i) {
    const auto& c = choices[i];
    json lp = c.with_logprobs ? logprobs_json(id.endpoint, c.logprobs) : json(nullptr);
    if (id.endpoint == Endpoint::completions) {
      list.push_back(
          {{"index", i}, {"text", c.text}, {"logprobs", lp}, {"finish_reason", c.finish_reason}});
    } else {
      list.push_back({{"index", i},
                      {"message", {{"role", "assistant"}, {"content", c.text}}},
                      {"logprobs", lp},
                      {"finish_reason", c.finish_reason}});
    }
  }
  out["choices"] = list;
  out["usage"] = usage_json(usage);
  return out;
}

json chunk_json(const ResponseIdentity& id, int index, const std::string& text,
                const json& logprobs, const std::string& finish_reason, bool first,
                bool with_usage_field) {
  json out = header(id, true);
  json choice = {{"index", index}, {"logprobs", logprobs}};
  if (id.endpoint == Endpoint::completions) {
    choice["text"] = text;
  } else {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || first) delta["content"] = text;
    choice["delta"] = delta;
  }
  choice["finish_reason"] = finish_reason.empty() ? json(nullptr) : json(finish_reason);
  out["choices"] = json::array({choice});
  if (with_usage_field) out["usage"] = nullptr;
  return out;
}

json usage_chunk_json(const ResponseIdentity& id, const Usage& usage) {
  json out = header(id, true);
  out["choices"] = json::array();
  out["usage"] = usage_json(usage);
  return out;
}

std::string sse_event(const json& payload) {
  return "data: " + dump_json(payload) + "\n\n";
}

}  // namespace difftx::serve
