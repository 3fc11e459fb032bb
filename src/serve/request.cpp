// The pure request parser: JSON bytes -> ParsedRequest or ApiError (see request.h for the
// checks). Field readers throw a private Problem that parse_request turns into the error.
#include "difftx/serve/request.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace difftx::serve {
namespace {

using nlohmann::json;

struct Problem {
  ApiError error;
};

// A name taken from the request (a field name, a model name) as an error message may quote it:
// control characters escaped (a message stays one line), at most 100 bytes.
std::string shown(std::string_view name) {
  std::string out;
  for (const char ch : name.substr(0, 100)) {
    const auto u = static_cast<unsigned char>(ch);
    if (u == '\n') {
      out += "\\n";
    } else if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += ch;
    }
  }
  if (name.size() > 100) out += "...";
  return out;
}

[[noreturn]] void reject(const std::string& param, std::string message, std::string code = {}) {
  throw Problem{invalid_request(std::move(message), param, std::move(code))};
}

std::string kind_of(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "null";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::string:
      return "a string";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
      return "an integer";
    case json::value_t::number_float:
      return fmt::format("the number {}", v.get<double>());
    case json::value_t::array:
      return "an array";
    case json::value_t::object:
      return "an object";
    default:
      return "an unsupported value";
  }
}

// Nesting depth of arrays and objects, scanning bytes (strings skipped): refuses deep input
// before the JSON library builds it.
void check_depth(std::string_view body, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : body) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        reject("", fmt::format("the request body nests arrays/objects more than {} levels deep; "
                               "send a flat OpenAI request object",
                               max_depth));
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
}

const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

std::optional<bool> read_bool(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean())
    reject(key, fmt::format("'{}' must be true or false, got {}", key, kind_of(*v)));
  return v->get<bool>();
}

std::optional<std::int64_t> read_int(const json& body, const char* key, std::int64_t lo,
                                     std::int64_t hi) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  std::int64_t x = 0;
  if (v->is_number_unsigned()) {
    auto u = v->get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(hi)) {
      reject(key, fmt::format("'{}' must be an integer in [{}, {}], got {}", key, lo, hi, u));
    }
    x = static_cast<std::int64_t>(u);
  } else if (v->is_number_integer()) {
    x = v->get<std::int64_t>();
  } else {
    reject(key,
           fmt::format("'{}' must be an integer in [{}, {}], got {}", key, lo, hi, kind_of(*v)));
  }
  if (x < lo || x > hi)
    reject(key, fmt::format("'{}' must be an integer in [{}, {}], got {}", key, lo, hi, x));
  return x;
}

std::optional<double> read_number(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) reject(key, fmt::format("'{}' must be a number, got {}", key, kind_of(*v)));
  double x = v->get<double>();
  if (!std::isfinite(x)) reject(key, fmt::format("'{}' must be a finite number", key));
  return x;
}

// Text that the tokenizer accepts: the JSON library has checked UTF-8; NUL is refused here.
std::string checked_text(const json& v, const std::string& param) {
  std::string s = v.get<std::string>();
  if (s.find('\0') != std::string::npos) {
    reject(param, fmt::format("'{}' contains a NUL character (\\u0000); remove it", param));
  }
  return s;
}

// Fields that may appear and are ignored, per endpoint; everything else not read is refused.
const std::set<std::string>& ignored_fields() {
  static const std::set<std::string> names = {"user", "metadata", "store", "service_tier",
                                              "parallel_tool_calls"};
  return names;
}

void check_known_fields(const json& body, Endpoint endpoint) {
  static const std::set<std::string> common = {"model",
                                               "max_tokens",
                                               "temperature",
                                               "top_p",
                                               "top_k",
                                               "seed",
                                               "stop",
                                               "stream",
                                               "stream_options",
                                               "n",
                                               "logprobs",
                                               "frequency_penalty",
                                               "presence_penalty",
                                               "logit_bias",
                                               "ignore_eos"};
  static const std::set<std::string> completions = {"prompt", "echo", "best_of", "suffix"};
  static const std::set<std::string> chat = {
      "messages",    "top_logprobs", "max_completion_tokens", "response_format", "tools",
      "tool_choice", "functions",    "function_call"};
  for (const auto& [key, value] : body.items()) {
    const auto& own = endpoint == Endpoint::completions ? completions : chat;
    if (common.count(key) || own.count(key) || ignored_fields().count(key)) continue;
    const auto& other = endpoint == Endpoint::completions ? chat : completions;
    if (other.count(key)) {
      reject(key,
             fmt::format("'{}' belongs to /v1/{}, not /v1/{}", shown(key),
                         endpoint == Endpoint::completions ? "chat/completions" : "completions",
                         endpoint == Endpoint::completions ? "completions" : "chat/completions"));
    }
    reject(key, fmt::format("unknown field '{}' (docs/serve.md lists the supported request fields)",
                            shown(key)));
  }
}

// Refuses features the server does not implement, unless given their neutral value.
void check_unsupported(const json& body, Endpoint endpoint) {
  auto unsupported = [](const char* key, const std::string& why) {
    reject(key, fmt::format("'{}' is not supported by difftx serve: {}", key, why),
           "unsupported_parameter");
  };
  for (const char* key : {"frequency_penalty", "presence_penalty"}) {
    if (auto x = read_number(body, key); x && *x != 0) unsupported(key, "send 0 or leave it out");
  }
  if (const json* v = field(body, "logit_bias")) {
    if (!v->is_object())
      reject("logit_bias", fmt::format("'logit_bias' must be an object, got {}", kind_of(*v)));
    if (!v->empty()) unsupported("logit_bias", "send {} or leave it out");
  }
  if (endpoint == Endpoint::completions) {
    if (auto echo = read_bool(body, "echo"); echo && *echo)
      unsupported("echo", "send false or leave it out");
    if (const json* v = field(body, "suffix")) {
      if (!v->is_string())
        reject("suffix", fmt::format("'suffix' must be a string, got {}", kind_of(*v)));
      if (!v->get<std::string>().empty())
        unsupported("suffix", "the models here only continue text");
    }
    if (auto best_of = read_int(body, "best_of", 1, 1 << 20); best_of) {
      auto n = read_int(body, "n", 1, 1 << 20).value_or(1);
      if (*best_of != n) unsupported("best_of", "send best_of equal to n, or leave it out");
    }
  } else {
    for (const char* key : {"tools", "functions"}) {
      if (const json* v = field(body, key)) {
        if (!v->is_array())
          reject(key, fmt::format("'{}' must be an array, got {}", key, kind_of(*v)));
        if (!v->empty()) unsupported(key, "tool calling is not implemented");
      }
    }
    for (const char* key : {"tool_choice", "function_call"}) {
      if (const json* v = field(body, key)) {
        if (!(v->is_string() && v->get<std::string>() == "none")) {
          unsupported(key, "tool calling is not implemented (\"none\" is accepted)");
        }
      }
    }
    if (const json* v = field(body, "response_format")) {
      if (!v->is_object()) {
        reject("response_format",
               fmt::format("'response_format' must be an object, got {}", kind_of(*v)));
      }
      auto type = v->find("type");
      if (type == v->end() || !type->is_string() || type->get<std::string>() != "text") {
        unsupported("response_format", "only {\"type\": \"text\"} is accepted");
      }
    }
  }
  if (const json* v = field(body, "user"); v && !v->is_string()) {
    reject("user", fmt::format("'user' must be a string, got {}", kind_of(*v)));
  }
}

std::vector<std::int32_t> read_ids(const json& arr, const std::string& param, int vocab_size) {
  std::vector<std::int32_t> ids;
  ids.reserve(arr.size());
  for (const auto& t : arr) {
    if (!t.is_number_integer()) {
      reject(param, fmt::format("'{}' token ids must be integers, got {}", param, kind_of(t)));
    }
    // number_unsigned values above int64 max read as negative here and are refused below.
    const std::int64_t id =
        t.is_number_unsigned() && t.get<std::uint64_t>() > std::uint64_t(INT64_MAX)
            ? -1
            : t.get<std::int64_t>();
    if (id < 0 || id >= vocab_size) {
      reject(param, fmt::format("'{}' holds token id {}, outside the vocabulary [0, {})", param, id,
                                vocab_size));
    }
    ids.push_back(static_cast<std::int32_t>(id));
  }
  return ids;
}

std::vector<PromptInput> read_prompts(const json& body, const RequestLimits& limits) {
  const json* v = field(body, "prompt");
  if (!v)
    reject("prompt",
           "'prompt' is required: a string, an array of strings, or an array of token ids");
  std::vector<PromptInput> prompts;
  if (v->is_string()) {
    prompts.push_back({false, checked_text(*v, "prompt"), {}});
    return prompts;
  }
  if (!v->is_array()) {
    reject("prompt",
           fmt::format(
               "'prompt' must be a string, an array of strings or an array of token ids, got {}",
               kind_of(*v)));
  }
  if (v->empty()) reject("prompt", "'prompt' is an empty array; give at least one prompt");
  if ((*v)[0].is_number()) {
    prompts.push_back({true, {}, read_ids(*v, "prompt", limits.vocab_size)});
    return prompts;
  }
  if (v->size() > static_cast<std::size_t>(limits.max_choices)) {
    reject("prompt", fmt::format("'prompt' holds {} prompts; at most {} per request", v->size(),
                                 limits.max_choices));
  }
  for (const auto& p : *v) {
    if (p.is_string()) {
      prompts.push_back({false, checked_text(p, "prompt"), {}});
    } else if (p.is_array() && !p.empty()) {
      prompts.push_back({true, {}, read_ids(p, "prompt", limits.vocab_size)});
    } else {
      reject("prompt",
             fmt::format(
                 "each prompt of the 'prompt' array must be a string or a non-empty array of token "
                 "ids, got {}",
                 kind_of(p)));
    }
  }
  return prompts;
}

std::string read_content(const json& message, std::size_t index) {
  const std::string param = fmt::format("messages[{}].content", index);
  auto it = message.find("content");
  if (it == message.end() || it->is_null())
    reject(param, fmt::format("'{}' is required (a string)", param));
  if (it->is_string()) return checked_text(*it, param);
  if (!it->is_array()) {
    reject(param, fmt::format("'{}' must be a string or an array of text parts, got {}", param,
                              kind_of(*it)));
  }
  std::string text;
  for (const auto& part : *it) {
    if (!part.is_object())
      reject(param,
             fmt::format("each part of '{}' must be an object, got {}", param, kind_of(part)));
    auto type = part.find("type");
    if (type == part.end() || !type->is_string() || type->get<std::string>() != "text") {
      reject(param, fmt::format("'{}' parts must have \"type\": \"text\" (only text is supported)",
                                param));
    }
    auto t = part.find("text");
    if (t == part.end() || !t->is_string())
      reject(param, fmt::format("a text part of '{}' needs a string 'text'", param));
    text += checked_text(*t, param);
  }
  return text;
}

std::vector<ChatMessage> read_messages(const json& body) {
  const json* v = field(body, "messages");
  if (!v) reject("messages", "'messages' is required: an array of {\"role\", \"content\"} objects");
  if (!v->is_array())
    reject("messages", fmt::format("'messages' must be an array, got {}", kind_of(*v)));
  if (v->empty()) reject("messages", "'messages' is empty; give at least one message");
  std::vector<ChatMessage> messages;
  for (std::size_t i = 0; i < v->size(); ++i) {
    const json& m = (*v)[i];
    const std::string param = fmt::format("messages[{}]", i);
    if (!m.is_object())
      reject(param, fmt::format("'{}' must be an object, got {}", param, kind_of(m)));
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      reject(param + ".role",
             fmt::format("'{}.role' is required: \"system\", \"user\" or \"assistant\"", param));
    }
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";
    if (r != "system" && r != "user" && r != "assistant") {
      reject(param + ".role",
             fmt::format(
                 "'{}.role' is \"{}\"; supported roles are system, developer, user and assistant",
                 param, shown(role->get<std::string>())));
    }
    messages.push_back({r, read_content(m, i)});
  }
  return messages;
}

std::vector<std::string> read_stop(const json& body, const RequestLimits& limits) {
  const json* v = field(body, "stop");
  std::vector<std::string> stops;
  if (!v) return stops;
  auto add = [&](const json& s) {
    if (!s.is_string())
      reject("stop", fmt::format("'stop' strings must be strings, got {}", kind_of(s)));
    std::string text = checked_text(s, "stop");
    if (text.empty())
      reject("stop", "'stop' holds an empty string; stop strings must be non-empty");
    if (text.size() > limits.max_stop_bytes) {
      reject("stop", fmt::format("a 'stop' string is {} bytes long; at most {}", text.size(),
                                 limits.max_stop_bytes));
    }
    stops.push_back(std::move(text));
  };
  if (v->is_string()) {
    add(*v);
  } else if (v->is_array()) {
    if (v->size() > static_cast<std::size_t>(limits.max_stop)) {
      reject("stop",
             fmt::format("'stop' holds {} strings; at most {}", v->size(), limits.max_stop));
    }
    for (const auto& s : *v) add(s);
  } else {
    reject("stop",
           fmt::format("'stop' must be a string or an array of strings, got {}", kind_of(*v)));
  }
  return stops;
}

ParsedRequest parse_checked(Endpoint endpoint, std::string_view body, const RequestLimits& limits) {
  if (body.empty())
    reject("", "the request body is empty; send a JSON object (Content-Type: application/json)");
  check_depth(body, limits.max_json_depth);
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    if (auto pos = what.find("] "); pos != std::string::npos) what = what.substr(pos + 2);
    reject("", fmt::format("the request body is not valid JSON: {}", what), "invalid_json");
  }
  if (!j.is_object())
    reject("", fmt::format("the request body must be a JSON object, got {}", kind_of(j)));
  check_known_fields(j, endpoint);
  check_unsupported(j, endpoint);

  ParsedRequest r;
  r.endpoint = endpoint;
  if (const json* m = field(j, "model")) {
    if (!m->is_string())
      reject("model", fmt::format("'model' must be a string, got {}", kind_of(*m)));
    r.model = m->get<std::string>();
    bool known = false;
    for (const auto& name : limits.model_names) known = known || name == r.model;
    if (!known) {
      ApiError e;
      e.status = 404;
      e.type = "invalid_request_error";
      e.param = "model";
      e.code = "model_not_found";
      e.message = fmt::format(
          "the model '{}' does not exist here; GET /v1/models lists the served model{}",
          shown(r.model), limits.model_names.empty() ? "" : " ('" + limits.model_names[0] + "')");
      throw Problem{e};
    }
  } else if (!limits.model_names.empty()) {
    r.model = limits.model_names[0];
  }

  if (endpoint == Endpoint::completions) {
    r.prompts = read_prompts(j, limits);
  } else {
    r.messages = read_messages(j);
  }

  const std::int64_t max_new = std::max(1, limits.context - 1);
  const char* max_key = endpoint == Endpoint::chat_completions && field(j, "max_completion_tokens")
                            ? "max_completion_tokens"
                            : "max_tokens";
  if (auto m = read_int(j, max_key, 1, max_new)) r.max_tokens = static_cast<int>(*m);
  if (auto t = read_number(j, "temperature")) {
    if (*t < 0 || *t > 2)
      reject("temperature", fmt::format("'temperature' must be in [0, 2], got {}", *t));
    r.temperature = *t;
  }
  if (auto p = read_number(j, "top_p")) {
    if (!(*p > 0 && *p <= 1)) reject("top_p", fmt::format("'top_p' must be in (0, 1], got {}", *p));
    r.top_p = *p;
  }
  if (auto k = read_int(j, "top_k", -1, std::numeric_limits<std::int32_t>::max()))
    r.top_k = *k < 0 ? 0 : int(*k);
  if (const json* s = field(j, "seed")) {
    if (!s->is_number_integer())
      reject("seed", fmt::format("'seed' must be an integer, got {}", kind_of(*s)));
    r.seed = s->is_number_unsigned() ? s->get<std::uint64_t>()
                                     : static_cast<std::uint64_t>(s->get<std::int64_t>());
  }
  r.stop = read_stop(j, limits);
  r.stream = read_bool(j, "stream").value_or(false);
  if (const json* so = field(j, "stream_options")) {
    if (!so->is_object())
      reject("stream_options",
             fmt::format("'stream_options' must be an object, got {}", kind_of(*so)));
    if (!r.stream)
      reject("stream_options", "'stream_options' is only allowed when 'stream' is true");
    r.include_usage = read_bool(*so, "include_usage").value_or(false);
  }
  if (auto n = read_int(j, "n", 1, limits.max_choices)) r.n = static_cast<int>(*n);
  if (endpoint == Endpoint::completions) {
    if (auto lp = read_int(j, "logprobs", 0, 20)) {
      r.logprobs = true;
      r.top_logprobs = static_cast<int>(*lp);
    }
  } else {
    r.logprobs = read_bool(j, "logprobs").value_or(false);
    if (auto top = read_int(j, "top_logprobs", 0, 20)) {
      if (!r.logprobs) reject("top_logprobs", "'top_logprobs' needs 'logprobs': true");
      r.top_logprobs = static_cast<int>(*top);
    }
  }
  r.ignore_eos = read_bool(j, "ignore_eos").value_or(false);
  if (r.choice_count() > limits.max_choices) {
    reject("n", fmt::format("the request asks for {} choices (prompts x n); at most {}",
                            r.choice_count(), limits.max_choices));
  }
  return r;
}

}  // namespace

const char* endpoint_name(Endpoint endpoint) {
  return endpoint == Endpoint::completions ? "completions" : "chat_completions";
}

int ParsedRequest::choice_count() const {
  const int prompt_count = endpoint == Endpoint::completions ? static_cast<int>(prompts.size()) : 1;
  return prompt_count * n;
}

ParseResult parse_request(Endpoint endpoint, std::string_view body,
                          const RequestLimits& limits) noexcept {
  try {
    return parse_checked(endpoint, body, limits);
  } catch (const Problem& p) {
    return p.error;
  } catch (const std::exception& e) {
    // Allocation failure or a library error on hostile input: still one clean 400.
    return invalid_request(fmt::format("the request could not be read: {}", e.what()));
  } catch (...) {
    return invalid_request("the request could not be read");
  }
}

}  // namespace difftx::serve
