// Limited JSON parsing (depth, size, repeated keys, overflowing numbers) through nlohmann's
// parser callback, and one-line snippets of values for error messages.
#include "difftx/core/json_input.h"

#include <string>
#include <unordered_set>
#include <vector>

#include "difftx/core/error.h"

namespace difftx {
namespace {

// nlohmann reports "number overflow parsing '1e999999'" (out_of_range 406): quote the literal.
std::string overflow_literal(const std::string& what) {
  const auto open = what.find('\'');
  const auto close = open == std::string::npos ? open : what.find('\'', open + 1);
  if (close == std::string::npos) return "";
  return what.substr(open + 1, close - open - 1);
}

template <typename Json>
Json parse_limited(std::string_view text, const std::string& source, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) {
    fail("{}: JSON text of {} bytes is larger than the {} bytes difftx accepts", source,
         text.size(), limits.max_bytes);
  }
  // keys[d]: the keys seen so far in the object whose members are at depth d.
  std::vector<std::unordered_set<std::string>> keys;
  auto callback = [&](int depth, nlohmann::json::parse_event_t event, Json& parsed) -> bool {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start || event == E::array_start) {
      if (depth >= limits.max_depth) {
        fail(
            "{}: JSON nested more than {} levels deep; difftx files are a few levels deep, so "
            "this is not the file you meant (or it is corrupt)",
            source, limits.max_depth);
      }
      if (event == E::object_start) {
        const auto inner = static_cast<std::size_t>(depth) + 1;
        if (keys.size() <= inner) keys.resize(inner + 1);
        keys[inner].clear();
      }
    } else if (event == E::key) {
      const auto d = static_cast<std::size_t>(depth);
      if (d < keys.size() && parsed.is_string()) {
        const auto& key = parsed.template get_ref<const std::string&>();
        if (!keys[d].insert(key).second) {
          fail("{}: key '{}' appears twice in one object; keep one", source, text_snippet(key));
        }
      }
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), callback);
  } catch (const nlohmann::json::out_of_range& e) {
    const std::string literal = overflow_literal(e.what());
    if (!literal.empty()) {
      fail(
          "{}: number {} is out of range (beyond the largest double, about 1.8e308); write a "
          "finite value",
          source, text_snippet(literal));
    }
    fail("{}: not valid JSON: {}", source, e.what());
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", source, e.what());
  }
}

template <typename Json>
std::string snippet_of(const Json& value, std::size_t max_chars) {
  // Values come from parse_limited (bounded depth), so dump's recursion is bounded too.
  std::string s = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  return text_snippet(s, max_chars);
}

}  // namespace

nlohmann::json parse_json(std::string_view text, const std::string& source,
                          const JsonLimits& limits) {
  return parse_limited<nlohmann::json>(text, source, limits);
}

nlohmann::ordered_json parse_ordered_json(std::string_view text, const std::string& source,
                                          const JsonLimits& limits) {
  return parse_limited<nlohmann::ordered_json>(text, source, limits);
}

nlohmann::json read_json_file(const std::filesystem::path& path, std::string_view what,
                              const JsonLimits& limits) {
  return parse_json(read_file_text(path, what, limits.max_bytes), path.string(), limits);
}

std::string json_snippet(const nlohmann::json& value, std::size_t max_chars) {
  return snippet_of(value, max_chars);
}

std::string json_snippet(const nlohmann::ordered_json& value, std::size_t max_chars) {
  return snippet_of(value, max_chars);
}

std::string text_snippet(std::string_view text, std::size_t max_chars) {
  if (text.size() <= max_chars) return std::string(text);
  std::size_t cut = max_chars > 3 ? max_chars - 3 : 0;
  // Do not split a UTF-8 sequence: back off over continuation bytes.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + "...";
}

}  // namespace difftx
