// Checks that input bytes are text difftx can train on: valid UTF-8 without NUL bytes.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace difftx::data {

struct TextProblem {
  std::size_t offset = 0;  // byte offset of the first bad byte
  std::size_t line = 1;    // 1-based line of that byte
  std::string what;        // "a NUL byte" or "invalid UTF-8 (byte 0xC3 ...)"
};

// The first problem in `bytes`, or nothing if they are valid UTF-8 without NUL bytes.
std::optional<TextProblem> find_text_problem(std::string_view bytes);

// Throws difftx::Error naming `source` (a file or a label) if `bytes` is not clean text.
void require_text(std::string_view bytes, const std::string& source);

// Length of the longest prefix of `bytes` with at most `max_bytes` bytes that does not cut a
// UTF-8 sequence (assumes valid UTF-8); at least one whole character when max_bytes > 0.
std::size_t utf8_prefix_length(std::string_view bytes, std::size_t max_bytes);

}  // namespace difftx::data
