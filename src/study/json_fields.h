// Strict reading of one JSON object of a study spec (or a synth recipe): unknown keys are
// refused with the list of known ones, each getter checks the type and names the field.
#pragma once

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "difftx/core/error.h"

namespace difftx::study {

class Fields {
 public:
  Fields(const nlohmann::json& j, std::string where, std::set<std::string> known)
      : j_(j), where_(std::move(where)) {
    if (!j_.is_object()) fail("{} must be a JSON object, got {}", where_, j_.dump());
    known.insert("comment");
    for (auto it = j_.begin(); it != j_.end(); ++it) {
      if (!known.count(it.key())) {
        fail("{}: unknown field '{}' (known: {}; see docs/study.md)", where_, it.key(),
             fmt::join(known, ", "));
      }
    }
  }
  bool has(const char* key) const { return j_.contains(key); }
  const nlohmann::json& at(const char* key) const {
    if (!j_.contains(key)) fail("{}: missing required field '{}' (see docs/study.md)", where_, key);
    return j_.at(key);
  }
  std::string string(const char* key, bool required, std::string fallback = "") const {
    if (!required && !has(key)) return fallback;
    const nlohmann::json& v = at(key);
    if (!v.is_string() || v.get<std::string>().empty()) bad(key, "a non-empty string", v);
    return v.get<std::string>();
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const nlohmann::json& v = at(key);
    if (!v.is_number() || !std::isfinite(v.get<double>())) bad(key, "a number", v);
    return v.get<double>();
  }
  int integer(const char* key, int fallback, int min) const {
    if (!has(key)) return fallback;
    const nlohmann::json& v = at(key);
    if (!v.is_number_integer() || v.get<std::int64_t>() < min || v.get<std::int64_t>() > 1 << 30) {
      bad(key, fmt::format("a whole number >= {}", min).c_str(), v);
    }
    return v.get<int>();
  }
  std::uint64_t whole(const char* key, std::uint64_t fallback, std::uint64_t min) const {
    if (!has(key)) return fallback;
    const nlohmann::json& v = at(key);
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::uint64_t>() < min) {
      bad(key, fmt::format("a whole number >= {}", min).c_str(), v);
    }
    return v.get<std::uint64_t>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const nlohmann::json& v = at(key);
    if (!v.is_boolean()) bad(key, "true or false", v);
    return v.get<bool>();
  }
  nlohmann::json object(const char* key) const {
    if (!has(key)) return nlohmann::json::object();
    const nlohmann::json& v = at(key);
    if (!v.is_object()) bad(key, "a JSON object", v);
    return v;
  }
  const nlohmann::json& array(const char* key, bool required) const {
    static const nlohmann::json empty = nlohmann::json::array();
    if (!required && !has(key)) return empty;
    const nlohmann::json& v = at(key);
    if (!v.is_array() || v.empty()) bad(key, "a non-empty array", v);
    return v;
  }
  const std::string& where() const { return where_; }
  [[noreturn]] void bad(const char* key, const char* expected, const nlohmann::json& v) const {
    fail("{}: field '{}' must be {}, got {}", where_, key, expected, v.dump());
  }

 private:
  const nlohmann::json& j_;
  std::string where_;
};

}  // namespace difftx::study
