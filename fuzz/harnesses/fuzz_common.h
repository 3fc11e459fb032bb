// Shared by the libFuzzer harnesses: the contract every parser of difftx must keep on any input
// is "return a value or throw difftx::Error". Any other exception (std::bad_alloc, an escaped
// nlohmann or std::out_of_range error: an "internal error" of the CLI) aborts, and so does a
// difftx::Error message of more than one line; crashes, hangs and sanitizer reports are found
// by libFuzzer itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "difftx/core/error.h"

namespace difftx::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Runs `parse`; returns normally for success or a clean difftx::Error, aborts otherwise.
template <typename Parse>
void expect_value_or_error(Parse&& parse) {
  try {
    parse();
  } catch (const Error& e) {
    const std::string_view message = e.what();
    if (message.find('\n') != std::string_view::npos || message.empty()) {
      std::fprintf(stderr, "difftx::Error message is empty or not one line: %s\n", e.what());
      std::abort();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "escaped exception (not difftx::Error): %s\n", e.what());
    std::abort();
  }
}

}  // namespace difftx::fuzz
