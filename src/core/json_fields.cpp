// JsonFields: typed, range-checked reads of one JSON object's fields (see json_fields.h).
#include "difftx/core/json_fields.h"

#include <algorithm>

#include "difftx/core/json_input.h"

namespace difftx {
using nlohmann::json;

void fail_json_integer(const json& v, std::string_view what, IntegerFault fault,
                       const std::string& lo, const std::string& hi) {
  switch (fault) {
    case IntegerFault::below:
      if (lo == "0") fail("{} must be >= 0, got {}", what, json_snippet(v));
      if (lo == "1") fail("{} must be positive, got {}", what, json_snippet(v));
      fail("{} must be >= {}, got {}", what, lo, json_snippet(v));
    case IntegerFault::above:
      fail("{} is out of range: {} (at most {})", what, json_snippet(v), hi);
    case IntegerFault::not_integer:
      break;
  }
  fail("{} must be an integer, got {} ({})", what, json_snippet(v), v.type_name());
}

double json_number(const json& v, std::string_view what) {
  if (!v.is_number())
    fail("{} must be a number, got {} ({})", what, json_snippet(v), v.type_name());
  return v.get<double>();
}

JsonFields::JsonFields(const json& object, std::string where,
                       std::initializer_list<std::string_view> known, Unknown unknown, Null null,
                       std::string_view unknown_hint)
    : object_(object), where_(std::move(where)), null_(null) {
  if (!object_.is_object()) {
    fail("{} must be a JSON object, got {} ({})", where_, json_snippet(object_),
         object_.type_name());
  }
  for (auto it = object_.begin(); it != object_.end(); ++it) {
    if (it.key() == "comment") {
      if (!it.value().is_string()) fail_type("comment", "a string");
      continue;
    }
    if (unknown == Unknown::reject &&
        std::find(known.begin(), known.end(), std::string_view(it.key())) == known.end()) {
      fail("{}: unknown field '{}' ({})", where_, text_snippet(it.key()), unknown_hint);
    }
  }
}

const json* JsonFields::find(std::string_view key) const {
  auto it = object_.find(key);
  if (it == object_.end()) return nullptr;
  if (null_ == Null::is_absent && it->is_null()) return nullptr;
  return &*it;
}

const json& JsonFields::at(std::string_view key) const {
  const json* v = find(key);
  if (!v) fail("{}: missing required field '{}'", where_, key);
  return *v;
}

std::string JsonFields::field(std::string_view key) const {
  return fmt::format("{}: field '{}'", where_, key);
}

void JsonFields::fail_type(std::string_view key, std::string_view expected) const {
  const json& v = object_.at(key);
  fail("{} must be {}, got {} ({})", field(key), expected, json_snippet(v), v.type_name());
}

bool JsonFields::boolean(std::string_view key) const {
  const json& v = at(key);
  if (!v.is_boolean()) fail_type(key, "true or false");
  return v.get<bool>();
}

bool JsonFields::boolean_or(std::string_view key, bool fallback) const {
  return has(key) ? boolean(key) : fallback;
}

std::string JsonFields::string(std::string_view key) const {
  const json& v = at(key);
  if (!v.is_string()) fail_type(key, "a string");
  return v.get<std::string>();
}

std::string JsonFields::string_or(std::string_view key, std::string fallback) const {
  return has(key) ? string(key) : std::move(fallback);
}

void JsonFields::require_positive(std::string_view key, double value) const {
  if (!(value > 0)) fail("{} must be positive, got {}", field(key), value);
}

void JsonFields::require_non_negative(std::string_view key, double value) const {
  if (!(value >= 0)) fail("{} must be >= 0, got {}", field(key), value);
}

}  // namespace difftx
