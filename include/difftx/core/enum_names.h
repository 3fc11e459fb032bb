// One parser for every enum read from text (configs, metadata, options): a table of
// (value, name) pairs gives the parse, the name and the "expected ..." list of the error.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "difftx/core/error.h"

namespace difftx {

template <typename E>
struct EnumName {
  E value;
  std::string_view name;
};

template <typename E, std::size_t N>
using EnumTable = std::array<EnumName<E>, N>;

// "\"a\"", "\"a\" or \"b\"", "\"a\", \"b\" or \"c\"".
template <typename E, std::size_t N>
std::string enum_choices(const EnumTable<E, N>& table) {
  std::string out;
  for (std::size_t i = 0; i < N; ++i) {
    if (i > 0) out += i + 1 == N ? " or " : ", ";
    out += '"';
    out += table[i].name;
    out += '"';
  }
  return out;
}

template <typename E, std::size_t N>
std::optional<E> find_enum(const EnumTable<E, N>& table, std::string_view text) {
  for (const auto& entry : table) {
    if (entry.name == text) return entry.value;
  }
  return std::nullopt;
}

// The value named `text`; otherwise difftx::Error "<what> must be "a", "b" or "c", got "x"",
// where `what` names the field with its document ("configs/tiny.json (train): field 'device'").
template <typename E, std::size_t N>
E parse_enum(const EnumTable<E, N>& table, std::string_view text, std::string_view what) {
  if (auto value = find_enum(table, text)) return *value;
  const std::string shown =
      text.size() > 60 ? std::string(text.substr(0, 57)) + "..." : std::string(text);
  fail("{} must be {}, got \"{}\"", what, enum_choices(table), shown);
}

template <typename E, std::size_t N>
const char* enum_name(const EnumTable<E, N>& table, E value) {
  for (const auto& entry : table) {
    if (entry.value == value) return entry.name.data();
  }
  return "?";
}

}  // namespace difftx
