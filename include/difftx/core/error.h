// Error type used across difftx: one message that names the problem and, where possible, the fix.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace difftx {

// `text` with every control character escaped ("\n", "\x1b"), so a message quoting user
// input (a JSON key, a path, a field value) still prints as exactly one line.
std::string one_line(std::string_view text);

// Thrown for every user-facing failure (bad config, corrupt file, bad argument). The CLI prints
// `difftx: error: <what()>` and exits non-zero; nothing else needs to catch it. The message is
// kept to one line (see one_line).
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(one_line(message)) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

#define DIFFTX_CHECK(cond, ...)               \
  do {                                        \
    if (!(cond)) ::difftx::fail(__VA_ARGS__); \
  } while (0)

}  // namespace difftx
