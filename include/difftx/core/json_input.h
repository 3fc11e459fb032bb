// JSON documents from outside (configs, checkpoint metadata, safetensors headers, Hugging Face
// files) parsed with limits: nesting depth (a deeply nested document would overflow the stack of
// every recursive consumer: dump, copy, compare), size, keys that repeat within an object
// (the parser would keep only one silently), and numbers that overflow a double (1e999999).
// Every failure is one difftx::Error naming the document.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "difftx/core/input_file.h"

namespace difftx {

struct JsonLimits {
  int max_depth = 32;                           // objects and arrays nested in one another
  std::uint64_t max_bytes = kMaxJsonFileBytes;  // size of the text
};

// Parses `text`; `source` names it in errors ("configs/tiny.json", "x.safetensors: header").
nlohmann::json parse_json(std::string_view text, const std::string& source,
                          const JsonLimits& limits = {});
// The same, keeping the order of object keys (safetensors headers).
nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& source,
                                          const JsonLimits& limits = {});

// Reads a regular file (difftx/core/input_file.h) of at most limits.max_bytes and parses it.
// `what` names its role ("run config", "Hugging Face config").
nlohmann::json read_json_file(const std::filesystem::path& path, std::string_view what,
                              const JsonLimits& limits = {});

// A JSON value for an error message: compact, on one line, cut to about `max_chars`.
std::string json_snippet(const nlohmann::json& value, std::size_t max_chars = 60);
std::string json_snippet(const nlohmann::ordered_json& value, std::size_t max_chars = 60);
// A user string (a key, a field value) for an error message, cut to about `max_chars` ("...").
std::string text_snippet(std::string_view text, std::size_t max_chars = 60);

}  // namespace difftx
