// Checks that input bytes are text difftx can train on: valid UTF-8 without NUL bytes.
#pragma once

#include <cstddef>
#include <cstdint>
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

// Length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence: at most 3
// trailing bytes of an incomplete character are left out (invalid bytes count as characters,
// so the text check still sees them).
std::size_t complete_utf8_length(std::string_view bytes);

// require_text for text that arrives in pieces (which must not split a character, see
// complete_utf8_length): the error gives the byte offset and line in the whole stream.
class StreamTextChecker {
 public:
  explicit StreamTextChecker(std::string source) : source_(std::move(source)) {}
  void check(std::string_view piece);
  std::uint64_t bytes() const { return offset_; }

 private:
  std::string source_;
  std::uint64_t offset_ = 0, lines_ = 0;  // bytes and newlines before the next piece
};

}  // namespace difftx::data
