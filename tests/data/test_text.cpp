// UTF-8 / NUL validation of input text and character-boundary prefixes.
#include <gtest/gtest.h>

#include "difftx/core/error.h"
#include "difftx/data/text.h"

namespace difftx::data {
namespace {

TEST(DataText, AcceptsAsciiAndMultibyteUtf8) {
  EXPECT_FALSE(find_text_problem(""));
  EXPECT_FALSE(find_text_problem("plain ASCII text\nwith lines\tand tabs\r\n"));
  EXPECT_FALSE(
      find_text_problem("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xE4\xB8\xAD\xE6\x96\x87"));
  EXPECT_FALSE(find_text_problem("\xEF\xBF\xBF\xF4\x8F\xBF\xBF"));  // U+FFFF, U+10FFFF
}

TEST(DataText, ReportsNulWithOffsetAndLine) {
  const std::string text = std::string("line one\nline two\nab") + '\0' + "cd";
  const auto p = find_text_problem(text);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->offset, 20u);
  EXPECT_EQ(p->line, 3u);
  EXPECT_EQ(p->what, "a NUL byte");
}

TEST(DataText, RejectsInvalidSequences) {
  const char* bad[] = {
      "\x80",              // lone continuation byte
      "\xC3",              // truncated 2-byte sequence
      "\xC0\xAF",          // overlong '/'
      "\xE0\x80\xAF",      // overlong 3-byte
      "\xED\xA0\x80",      // UTF-16 surrogate
      "\xF4\x90\x80\x80",  // above U+10FFFF
      "\xF8\x88\x80\x80",  // 5-byte form
      "\xFF",
  };
  for (const char* b : bad) {
    const std::string text = std::string("0123456789") + b + "tail";
    const auto p = find_text_problem(text);
    ASSERT_TRUE(p) << "accepted " << testing::PrintToString(text);
    EXPECT_EQ(p->offset, 10u);
    EXPECT_NE(p->what.find("invalid UTF-8"), std::string::npos);
  }
}

TEST(DataText, RequireTextNamesTheSource) {
  try {
    require_text(std::string("ok\0", 3), "/some/file.bin");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("/some/file.bin"), std::string::npos) << msg;
    EXPECT_NE(msg.find("NUL"), std::string::npos) << msg;
    EXPECT_NE(msg.find("byte 2"), std::string::npos) << msg;
  }
}

TEST(DataText, Utf8PrefixNeverCutsACharacter) {
  const std::string s = "a\xC3\xA9\xE2\x82\xAC";  // a, é (2 bytes), € (3 bytes)
  EXPECT_EQ(utf8_prefix_length(s, 100), s.size());
  EXPECT_EQ(utf8_prefix_length(s, 1), 1u);
  EXPECT_EQ(utf8_prefix_length(s, 2), 1u);
  EXPECT_EQ(utf8_prefix_length(s, 3), 3u);
  EXPECT_EQ(utf8_prefix_length(s, 5), 3u);
  EXPECT_EQ(utf8_prefix_length("\xE2\x82\xAC", 1), 3u);  // one character longer than the limit
}

}  // namespace
}  // namespace difftx::data
