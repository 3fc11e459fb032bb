// The one reader of JSON objects for every config (model, run sections, schedule, Hugging Face
// config, training-state metadata): unknown fields, wrong types and out-of-range values are
// errors naming the document, the field and the value. Integers are read into the exact type
// they are used as, with range checks: 2^32 + 1, 2^63 or 1.5 where an int is wanted is an error,
// never a silent truncation.
#pragma once

#include <concepts>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>

#include "difftx/core/enum_names.h"
#include "difftx/core/error.h"

namespace difftx {

// The value of `v` if it is a JSON integer in [lo, hi]. `what` names it in errors ("cfg.json
// (data): field 'seq_len'"). Floats (1.5, 2.0, 1e3) are not integers; values beyond every
// integer type (1e30, 18446744073709551616) are out of range.
template <std::integral T>
T json_integer(const nlohmann::json& v, std::string_view what, T lo = std::numeric_limits<T>::min(),
               T hi = std::numeric_limits<T>::max());

// `v` as a double, which must be a JSON number (integers included); parse_json already refuses
// numbers that overflow, so the result is finite.
double json_number(const nlohmann::json& v, std::string_view what);

// Reads the fields of one JSON object. `where` names it in errors: "configs/tiny.json (data)".
class JsonFields {
 public:
  enum class Unknown { reject, ignore };
  enum class Null { is_value, is_absent };

  // Throws unless `object` is a JSON object. With Unknown::reject, a field outside `known` (and
  // "comment", always allowed, which must be a string) is an error mentioning `unknown_hint`.
  JsonFields(const nlohmann::json& object, std::string where,
             std::initializer_list<std::string_view> known, Unknown unknown = Unknown::reject,
             Null null = Null::is_value, std::string_view unknown_hint = "see docs/config.md");

  const std::string& where() const { return where_; }
  // True when the field is present (and not null, with Null::is_absent).
  bool has(std::string_view key) const { return find(key) != nullptr; }
  const nlohmann::json* find(std::string_view key) const;
  const nlohmann::json& at(std::string_view key) const;  // error "missing required field" if absent
  // "<where>: field '<key>'", the prefix of every message about that field.
  std::string field(std::string_view key) const;

  // Required (missing: error) and optional (missing: `fallback`) reads.
  template <std::integral T>
  T integer(std::string_view key, T lo = std::numeric_limits<T>::min(),
            T hi = std::numeric_limits<T>::max()) const {
    return json_integer<T>(at(key), field(key), lo, hi);
  }
  template <std::integral T>
  T integer_or(std::string_view key, T fallback, T lo = std::numeric_limits<T>::min(),
               T hi = std::numeric_limits<T>::max()) const {
    const nlohmann::json* v = find(key);
    return v ? json_integer<T>(*v, field(key), lo, hi) : fallback;
  }
  double number(std::string_view key) const { return json_number(at(key), field(key)); }
  double number_or(std::string_view key, double fallback) const {
    const nlohmann::json* v = find(key);
    return v ? json_number(*v, field(key)) : fallback;
  }
  bool boolean(std::string_view key) const;
  bool boolean_or(std::string_view key, bool fallback) const;
  std::string string(std::string_view key) const;
  std::string string_or(std::string_view key, std::string fallback) const;
  template <typename E, std::size_t N>
  E choice(std::string_view key, const EnumTable<E, N>& table) const {
    return parse_enum(table, string(key), field(key));
  }
  template <typename E, std::size_t N>
  E choice_or(std::string_view key, const EnumTable<E, N>& table, E fallback) const {
    return has(key) ? choice(key, table) : fallback;
  }

  // Range checks of values already read, with the project's wording.
  void require_positive(std::string_view key, double value) const;      // > 0
  void require_non_negative(std::string_view key, double value) const;  // >= 0
  [[noreturn]] void fail_type(std::string_view key, std::string_view expected) const;

 private:
  const nlohmann::json& object_;
  std::string where_;
  Null null_;
};

// ---- implementation of json_integer -------------------------------------------------------

enum class IntegerFault { not_integer, below, above };
[[noreturn]] void fail_json_integer(const nlohmann::json& v, std::string_view what,
                                    IntegerFault fault, const std::string& lo,
                                    const std::string& hi);

template <std::integral T>
T json_integer(const nlohmann::json& v, std::string_view what, T lo, T hi) {
  IntegerFault fault = IntegerFault::not_integer;
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (!std::cmp_less(u, lo) && !std::cmp_greater(u, hi)) return static_cast<T>(u);
    fault = std::cmp_less(u, lo) ? IntegerFault::below : IntegerFault::above;
  } else if (v.is_number_integer()) {
    const auto s = v.get<std::int64_t>();
    if (!std::cmp_less(s, lo) && !std::cmp_greater(s, hi)) return static_cast<T>(s);
    fault = std::cmp_less(s, lo) ? IntegerFault::below : IntegerFault::above;
  } else if (v.is_number_float()) {
    // A literal beyond every integer type is stored as a double: report it as out of range.
    const double d = v.get<double>();
    if (d >= 0x1p63) fault = IntegerFault::above;
    if (d < -0x1p63) fault = IntegerFault::below;
  }
  fail_json_integer(v, what, fault, std::to_string(lo), std::to_string(hi));
}

}  // namespace difftx
