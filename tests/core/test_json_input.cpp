// Limited JSON parsing (core/json_input.h), the one field reader of every config
// (core/json_fields.h) and the enum parser (core/enum_names.h): depth, repeated keys, overflowing
// numbers, integers read into their exact type with range checks, messages naming the field.
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "difftx/core/enum_names.h"
#include "difftx/core/json_fields.h"
#include "difftx/core/json_input.h"

namespace difftx {
namespace {
using nlohmann::json;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

void expect_parts(const std::string& message, const std::vector<std::string>& parts) {
  for (const auto& p : parts)
    EXPECT_NE(message.find(p), std::string::npos) << "'" << p << "' not in: " << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

std::string nested(int depth, const std::string& inner = "1") {
  return std::string(depth, '[') + inner + std::string(depth, ']');
}

TEST(ParseJson, ParsesOrdinaryDocuments) {
  const json j = parse_json(R"({"a": [1, 2.5, "x", null, true], "b": {"c": {}}})", "doc");
  EXPECT_EQ(j.at("a").size(), 5u);
  EXPECT_EQ(parse_ordered_json(R"({"z": 1, "a": 2})", "doc").begin().key(), "z");
  // The same key in different objects is fine.
  EXPECT_NO_THROW(
      parse_json(R"({"a": {"k": 1}, "b": {"k": 2}, "k": [{"k": 1}, {"k": 2}]})", "doc"));
}

TEST(ParseJson, RefusesDeepNestingWithoutCrashing) {
  EXPECT_NO_THROW(parse_json(nested(31), "doc"));
  expect_parts(error_of([] { parse_json(nested(33), "cfg.json"); }),
               {"cfg.json", "nested more than 32"});
  // Deep enough to overflow the stack of any recursive consumer (dump, copy, destruction).
  expect_parts(error_of([] { parse_json("{\"model\": " + nested(200000) + "}", "cfg.json"); }),
               {"cfg.json", "nested more than"});
  expect_parts(error_of([] { parse_json(std::string(300000, '['), "cfg.json"); }),
               {"nested more than"});
  expect_parts(error_of([] { parse_json(nested(20), "h", JsonLimits{.max_depth = 8}); }),
               {"nested more than 8"});
}

TEST(ParseJson, RefusesRepeatedKeys) {
  expect_parts(error_of([] { parse_json(R"({"lr": 1, "lr": 2})", "s.json"); }),
               {"s.json", "'lr' appears twice"});
  expect_parts(error_of([] { parse_json(R"({"a": [{"x": 1, "y": 2, "x": 3}]})", "s.json"); }),
               {"'x' appears twice"});
  expect_parts(error_of([] { parse_ordered_json(R"({"w": {}, "w": {}})", "h"); }),
               {"'w' appears twice"});
}

TEST(ParseJson, OverflowingNumbersAreClearErrors) {
  expect_parts(error_of([] { parse_json(R"({"lr": 1e999999})", "run.json"); }),
               {"run.json", "number 1e999999 is out of range"});
  expect_parts(error_of([] { parse_json("-1e400", "x"); }), {"-1e400", "out of range"});
  // Integers beyond 64 bits are parsed as doubles (and refused where an integer is wanted).
  EXPECT_TRUE(parse_json("18446744073709551616", "x").is_number_float());
}

TEST(ParseJson, SyntaxErrorsAndSizeLimit) {
  expect_parts(error_of([] { parse_json("{\"a\": ", "cfg.json"); }),
               {"cfg.json", "not valid JSON"});
  expect_parts(error_of([] { parse_json("{} {}", "cfg.json"); }), {"not valid JSON"});
  expect_parts(error_of([] { parse_json("\"\xff\"", "cfg.json"); }), {"not valid JSON"});
  expect_parts(error_of([] { parse_json("[1, 2, 3]", "x", JsonLimits{.max_bytes = 4}); }),
               {"larger than the 4 bytes"});
}

TEST(ParseJson, Snippets) {
  EXPECT_EQ(json_snippet(json{{"a", 1}}), R"({"a":1})");
  const std::string long_text(500, 'x');
  EXPECT_LE(json_snippet(json(long_text)).size(), 60u);
  EXPECT_EQ(text_snippet("short"), "short");
  EXPECT_EQ(text_snippet(std::string(100, 'y'), 10), "yyyyyyy...");
  // A cut never splits a UTF-8 sequence.
  const std::string cut = text_snippet("aaaaaa\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 10);
  EXPECT_EQ(cut, "aaaaaa...");
}

TEST(JsonInteger, ReadsIntoTheExactTypeWithRangeChecks) {
  EXPECT_EQ(json_integer<int>(json(7), "f"), 7);
  EXPECT_EQ(json_integer<int>(json(-7), "f"), -7);
  EXPECT_EQ(json_integer<int>(json(2147483647), "f"), 2147483647);
  EXPECT_EQ(json_integer<std::uint64_t>(json(18446744073709551615ull), "f"),
            18446744073709551615ull);
  EXPECT_EQ(json_integer<std::int64_t>(json(-9223372036854775807ll - 1), "f"),
            std::numeric_limits<std::int64_t>::min());
  // Beyond int: 2^31, 2^32 + 1, 2^63 are out of range, never truncated.
  for (const char* text :
       {"2147483648", "4294967297", "9223372036854775808", "18446744073709551616", "1e30"}) {
    expect_parts(
        error_of([&] { json_integer<int>(parse_json(text, "x"), "cfg (data): field 'seq_len'"); }),
        {"field 'seq_len' is out of range", "at most 2147483647"});
  }
  expect_parts(error_of([] { json_integer<int>(json(-2147483649ll), "f"); }),
               {"f must be >= -2147483648"});
  expect_parts(error_of([] { json_integer<std::uint64_t>(json(-1), "field 'seed'"); }),
               {"field 'seed' must be >= 0, got -1"});
  expect_parts(
      error_of([] { json_integer<std::uint64_t>(parse_json("-1e30", "x"), "field 'seed'"); }),
      {"must be >= 0"});
  // Not integers: a fraction, a float spelling, other types.
  for (const char* text : {"1.5", "2.0", "1e3", "\"3\"", "true", "null", "[1]"}) {
    expect_parts(error_of([&] { json_integer<int>(parse_json(text, "x"), "field 'steps'"); }),
                 {"field 'steps' must be an integer"});
  }
  // Ranges: the project's wording for 0 and 1 as lower bounds.
  expect_parts(error_of([] { json_integer<int>(json(0), "field 'steps'", 1, 10); }),
               {"must be positive, got 0"});
  expect_parts(error_of([] { json_integer<int>(json(-1), "field 'x'", 0, 10); }),
               {"must be >= 0, got -1"});
  expect_parts(error_of([] { json_integer<int>(json(11), "field 'x'", 0, 10); }),
               {"is out of range: 11 (at most 10)"});
  expect_parts(error_of([] { json_integer<int>(json(2), "field 'x'", 3, 10); }),
               {"must be >= 3, got 2"});
}

TEST(JsonFields, ReadsTypedFieldsAndNamesEveryProblem) {
  const json j = parse_json(
      R"({"n": 3, "x": 0.5, "flag": true, "name": "abc", "kind": "b", "comment": "free text", "nothing": null})",
      "x");
  const JsonFields f(j, "cfg.json (sec)", {"n", "x", "flag", "name", "kind", "nothing"});
  EXPECT_EQ(f.integer<int>("n", 1, 5), 3);
  EXPECT_EQ(f.integer_or<int>("absent", 9), 9);
  EXPECT_DOUBLE_EQ(f.number("x"), 0.5);
  EXPECT_DOUBLE_EQ(f.number("n"), 3.0);  // an integer is a number
  EXPECT_DOUBLE_EQ(f.number_or("absent", 2.5), 2.5);
  EXPECT_TRUE(f.boolean("flag"));
  EXPECT_EQ(f.string("name"), "abc");
  EXPECT_EQ(f.string_or("absent", "d"), "d");
  enum class K { a, b };
  constexpr EnumTable<K, 2> kinds{{{K::a, "a"}, {K::b, "b"}}};
  EXPECT_EQ(f.choice("kind", kinds), K::b);
  EXPECT_EQ(f.choice_or("absent", kinds, K::a), K::a);
  EXPECT_TRUE(f.has("nothing"));

  expect_parts(error_of([&] { f.integer<int>("missing"); }),
               {"cfg.json (sec): missing required field 'missing'"});
  expect_parts(error_of([&] { f.integer<int>("x"); }),
               {"cfg.json (sec): field 'x' must be an integer, got 0.5 (number)"});
  expect_parts(error_of([&] { f.number("name"); }),
               {"field 'name' must be a number, got \"abc\" (string)"});
  expect_parts(error_of([&] { f.boolean("n"); }),
               {"field 'n' must be true or false, got 3 (number)"});
  expect_parts(error_of([&] { f.string("n"); }), {"field 'n' must be a string"});
  expect_parts(error_of([&] { f.choice("name", kinds); }),
               {"field 'name' must be \"a\" or \"b\", got \"abc\""});
  expect_parts(error_of([&] { f.require_positive("x", -1); }),
               {"field 'x' must be positive, got -1"});
  expect_parts(error_of([&] { f.require_non_negative("x", -1); }), {"field 'x' must be >= 0"});

  const JsonFields absent(j, "x", {}, JsonFields::Unknown::ignore, JsonFields::Null::is_absent);
  EXPECT_FALSE(absent.has("nothing"));
  EXPECT_EQ(absent.integer_or<int>("nothing", 4), 4);
}

TEST(JsonFields, RefusesUnknownFieldsNonObjectsAndBadComments) {
  const json j = parse_json(R"({"n": 1, "nn": 2})", "x");
  expect_parts(error_of([&] { JsonFields(j, "cfg.json (data)", {"n"}); }),
               {"cfg.json (data): unknown field 'nn' (see docs/config.md)"});
  EXPECT_NO_THROW(JsonFields(j, "x", {}, JsonFields::Unknown::ignore));
  expect_parts(error_of([] {
                 JsonFields(json::array({1, 2}), "cfg.json (optim)", {});
               }),
               {"cfg.json (optim) must be a JSON object", "array"});
  expect_parts(error_of([] { JsonFields(parse_json(R"({"comment": 3})", "x"), "s", {}); }),
               {"field 'comment' must be a string"});
  // Keys with control characters or great length stay on one line and short.
  const json odd = parse_json("{\"a\\nb" + std::string(300, 'k') + "\": 1}", "x");
  const std::string message = error_of([&] { JsonFields(odd, "s", {"n"}); });
  expect_parts(message, {"unknown field 'a\\nb"});
  EXPECT_LT(message.size(), 200u);
}

TEST(EnumNames, ParseNameAndChoices) {
  enum class C { x, y, z };
  constexpr EnumTable<C, 3> table{{{C::x, "ex"}, {C::y, "why"}, {C::z, "zed"}}};
  EXPECT_EQ(parse_enum(table, "why", "what"), C::y);
  EXPECT_STREQ(enum_name(table, C::z), "zed");
  EXPECT_EQ(enum_choices(table), "\"ex\", \"why\" or \"zed\"");
  expect_parts(error_of([&] { parse_enum(table, "w", "cfg: field 'c'"); }),
               {"cfg: field 'c' must be \"ex\", \"why\" or \"zed\", got \"w\""});
  EXPECT_FALSE(find_enum(table, "").has_value());
}

}  // namespace
}  // namespace difftx
