// OpenAI-style error objects: every 4xx/5xx answer of `difftx serve` carries
// {"error": {"message", "type", "param", "code"}} with the HTTP status it is sent with.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace difftx::serve {

struct ApiError {
  int status = 400;                            // HTTP status code
  std::string type = "invalid_request_error";  // OpenAI error type
  std::string message;                         // what is wrong and what to do
  std::string param;                           // the request field at fault ("" = none)
  std::string code;                            // machine-readable code ("" = none)

  // {"error": {...}}; empty param/code become null, as OpenAI sends them.
  nlohmann::json to_json() const;
};

// 400 invalid_request_error naming `param`.
ApiError invalid_request(std::string message, std::string param = {}, std::string code = {});

// The JSON text of a body, never throwing on invalid UTF-8 (bad bytes become U+FFFD).
std::string dump_json(const nlohmann::json& j);

}  // namespace difftx::serve
