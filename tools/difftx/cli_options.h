// Shared pieces of the `difftx` commands: strict integer options (a value out of the type's
// or the option's range is refused, never wrapped), the exit status a command asks for, and
// shell quoting for the commands difftx prints for the user to run.
#pragma once

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace difftx::cli {

// A CLI11 check for integer options: the whole text must be a decimal integer of type T
// (no sign for unsigned types) within [min, max]. Messages: "must be at least 1, got 0",
// "'-1' is not a whole number >= 0", "18446744073709551616 is too large (at most ...)".
template <typename T>
CLI::Validator integer_in(T min, T max = std::numeric_limits<T>::max()) {
  return CLI::Validator(
      [min, max](std::string& text) -> std::string {
        T value{};
        const char* end = text.data() + text.size();
        auto [ptr, ec] = std::from_chars(text.data(), end, value);
        if (ec == std::errc::result_out_of_range) {
          return fmt::format("{} is out of range ({} to {})", text, min, max);
        }
        if (ec != std::errc() || ptr != end || text.empty()) {
          return fmt::format("'{}' is not a whole number{}", text,
                             std::is_unsigned_v<T> ? " >= 0" : "");
        }
        if (value < min) return fmt::format("must be at least {}, got {}", min, value);
        if (value > max) return fmt::format("must be at most {}, got {}", max, value);
        return "";
      },
      max == std::numeric_limits<T>::max() ? fmt::format(">={}", min)
                                           : fmt::format("in [{}, {}]", min, max));
}

// The process exit status once the command returns (default 0); e.g. 130 after Ctrl-C.
void set_exit_status(int status);
int exit_status();

// `text` quoted for a POSIX shell when it needs it ("runs/x" stays, "a b" -> 'a b').
std::string shell_quote(const std::string& text);

// "\n", "\t" and "\\" in `text` turned into a newline, a tab and a backslash.
std::string unescape(const std::string& text);

}  // namespace difftx::cli
