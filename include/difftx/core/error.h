// Error type used across difftx: one message that names the problem and, where possible, the fix.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace difftx {

// Thrown for every user-facing failure (bad config, corrupt file, bad argument). The CLI prints
// `difftx: error: <what()>` and exits non-zero; nothing else needs to catch it.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

#define DIFFTX_CHECK(cond, ...)              \
  do {                                       \
    if (!(cond)) ::difftx::fail(__VA_ARGS__); \
  } while (0)

}  // namespace difftx
