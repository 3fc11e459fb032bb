// UTF-8 / NUL validation of input text, with the byte offset and line of the first problem.
#include "difftx/data/text.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "difftx/core/error.h"

namespace difftx::data {

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is invalid (overlong forms,
// surrogates and code points above U+10FFFF are invalid, as in RFC 3629).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  auto cont = [&](std::size_t k) {
    return i + k < s.size() && (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
  };
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  if (b0 < 0x80) return 1;
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (b0 == 0xE0 && byte(1) < 0xA0) return 0;  // overlong
    if (b0 == 0xED && byte(1) > 0x9F) return 0;  // surrogate
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (b0 == 0xF0 && byte(1) < 0x90) return 0;  // overlong
    if (b0 == 0xF4 && byte(1) > 0x8F) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

}  // namespace

std::optional<TextProblem> find_text_problem(std::string_view bytes) {
  std::size_t i = 0;
  const std::size_t n = bytes.size();
  auto problem_at = [&](std::size_t at, std::string what) {
    TextProblem p;
    p.offset = at;
    p.line = 1 + static_cast<std::size_t>(std::count(bytes.begin(), bytes.begin() + at, '\n'));
    p.what = std::move(what);
    return p;
  };
  while (i < n) {
    // Fast path: 8 ASCII bytes without NUL at a time.
    if (i + 8 <= n) {
      std::uint64_t w;
      std::memcpy(&w, bytes.data() + i, 8);
      const bool ascii = (w & 0x8080808080808080ULL) == 0;
      const bool has_zero = ((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL) != 0;
      if (ascii && !has_zero) {
        i += 8;
        continue;
      }
    }
    const auto b = static_cast<unsigned char>(bytes[i]);
    if (b == 0) return problem_at(i, "a NUL byte");
    const std::size_t len = utf8_sequence_length(bytes, i);
    if (len == 0) return problem_at(i, fmt::format("invalid UTF-8 (byte 0x{:02X})", b));
    i += len;
  }
  return std::nullopt;
}

namespace {

[[noreturn]] void fail_text(const std::string& source, const std::string& what,
                            std::uint64_t offset, std::uint64_t line) {
  fail(
      "'{}' is not UTF-8 text: {} at byte {} (line {}); it looks like a binary file: remove "
      "it from the input or convert it to UTF-8 text",
      source, what, offset, line);
}

}  // namespace

void require_text(std::string_view bytes, const std::string& source) {
  if (auto p = find_text_problem(bytes)) fail_text(source, p->what, p->offset, p->line);
}

std::size_t complete_utf8_length(std::string_view bytes) {
  const std::size_t n = bytes.size();
  for (std::size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto b = static_cast<unsigned char>(bytes[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // a continuation byte: look further back
    std::size_t need = 1;
    if (b >= 0xC2 && b <= 0xDF) need = 2;
    if (b >= 0xE0 && b <= 0xEF) need = 3;
    if (b >= 0xF0 && b <= 0xF4) need = 4;
    return need > back ? n - back : n;
  }
  return n;
}

void StreamTextChecker::check(std::string_view piece) {
  if (auto p = find_text_problem(piece)) {
    fail_text(source_, p->what, offset_ + p->offset, lines_ + p->line);
  }
  offset_ += piece.size();
  lines_ += static_cast<std::uint64_t>(std::count(piece.begin(), piece.end(), '\n'));
}

std::size_t utf8_prefix_length(std::string_view bytes, std::size_t max_bytes) {
  if (bytes.size() <= max_bytes) return bytes.size();
  std::size_t end = max_bytes;
  // Step back over continuation bytes to the start of the character that crosses the limit.
  while (end > 0 && (static_cast<unsigned char>(bytes[end]) & 0xC0) == 0x80) --end;
  if (end == 0 && max_bytes > 0) {
    // The first character alone is longer than max_bytes: keep it whole.
    end = 1;
    while (end < bytes.size() && (static_cast<unsigned char>(bytes[end]) & 0xC0) == 0x80) ++end;
  }
  return end;
}

}  // namespace difftx::data
