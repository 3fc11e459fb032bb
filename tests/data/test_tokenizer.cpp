// Tokenizer: reserved ids, deterministic training, exact round trips on real and random text,
// the cached encoder's agreement with the library path, and clear errors.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <random>

#include "data_test_util.h"
#include "difftx/core/error.h"
#include "difftx/data/tokenizer.h"

namespace difftx::data {
namespace {

using test_util::TempDir;

const Tokenizer& shared_tokenizer() {
  static const Tokenizer t = test_util::small_brown_tokenizer();
  return t;
}

// Random UTF-8 text mixing words, runs of spaces, newlines, tabs, U+2581, multi-byte
// characters, digits and very long words.
std::string random_text(std::mt19937_64& rng, std::size_t approx_bytes) {
  static const std::vector<std::string> pieces = {"the",
                                                  "The",
                                                  " ",
                                                  "  ",
                                                  "   ",
                                                  "\n",
                                                  "\n\n",
                                                  "\t",
                                                  "\r\n",
                                                  ".",
                                                  ",",
                                                  "\"",
                                                  "'",
                                                  "quick",
                                                  "brown",
                                                  "fox",
                                                  "1961",
                                                  "3.14159",
                                                  "caf\xC3\xA9",
                                                  "na\xC3\xAFve",
                                                  "\xE4\xB8\xAD\xE6\x96\x87",
                                                  "\xF0\x9F\x98\x80",
                                                  "\xE2\x96\x81",
                                                  "\xE2\x96\x81\xE2\x96\x81",
                                                  "x\xE2\x96\x81y",
                                                  "\xC2\xA0",
                                                  "\xE2\x80\x94",
                                                  "\xD0\xBF\xD1\x80\xD0\xB8",
                                                  "~",
                                                  "{}",
                                                  "\\",
                                                  "\x01",
                                                  "\x7F",
                                                  "\xEF\xBF\xBD",
                                                  "\xF4\x8F\xBF\xBF"};
  std::string s;
  while (s.size() < approx_bytes) {
    const std::size_t k = rng() % (pieces.size() + 4);
    if (k < pieces.size()) {
      s += pieces[k];
    } else if (k == pieces.size()) {
      s += std::string(1500 + rng() % 1500, static_cast<char>('a' + rng() % 26));  // long word
    } else {
      // A random code point (no surrogates, no NUL).
      std::uint32_t cp = 1 + static_cast<std::uint32_t>(rng() % 0x10FFFF);
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0x41;
      if (cp < 0x80) {
        s += static_cast<char>(cp);
      } else if (cp < 0x800) {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        s += static_cast<char>(0xE0 | (cp >> 12));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        s += static_cast<char>(0xF0 | (cp >> 18));
        s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      }
    }
  }
  return s;
}

TEST(DataTokenizer, ReservedIdsAndPieces) {
  const Tokenizer& t = shared_tokenizer();
  EXPECT_EQ(t.vocab_size(), 800);
  EXPECT_EQ(t.piece(kPadId), "<pad>");
  EXPECT_EQ(t.piece(kBosId), "<s>");
  EXPECT_EQ(t.piece(kEosId), "</s>");
  EXPECT_EQ(t.piece(kUnkId), "<unk>");
  EXPECT_EQ(t.piece(kNewlineId), "\n");
  EXPECT_EQ(t.piece(kFirstByteId), "<0x00>");
  EXPECT_EQ(t.piece(kFirstByteId + 255), "<0xFF>");
  EXPECT_TRUE(t.word_separable());
  EXPECT_EQ(t.encode("\n"), std::vector<std::int32_t>{kNewlineId});
  EXPECT_TRUE(t.encode("").empty());
  EXPECT_EQ(t.decode(std::vector<std::int32_t>{kBosId, kEosId, kPadId}), "");
  EXPECT_THROW(t.piece(800), Error);
}

TEST(DataTokenizer, TrainingIsDeterministic) {
  const auto sentences = test_util::brown_sentences(15);
  TokenizerTrainOptions o;
  o.vocab_size = 600;
  const Tokenizer a = Tokenizer::train(sentences, o);
  const Tokenizer b = Tokenizer::train(sentences, o);
  EXPECT_EQ(a.serialized(), b.serialized());
  EXPECT_EQ(a.fingerprint(), b.fingerprint());
  o.vocab_size = 601;
  EXPECT_NE(Tokenizer::train(sentences, o).serialized(), a.serialized());
}

TEST(DataTokenizer, RoundTripsRealText) {
  const Tokenizer& t = shared_tokenizer();
  const Corpus corpus = Corpus::brown(test_util::brown_dir_or_fail());
  std::size_t bytes = 0, tokens = 0;
  for (std::size_t i = 0; i < corpus.size(); i += 10) {  // 50 documents across all genres
    const std::string text = corpus.text(i);
    const auto ids = t.encode(text);
    ASSERT_EQ(t.decode(ids), text) << corpus.key(i);
    bytes += text.size();
    tokens += ids.size();
  }
  // Compresses real English (more than 2 bytes per token even with 800 pieces).
  EXPECT_GT(static_cast<double>(bytes) / tokens, 2.0);
}

TEST(DataTokenizer, RoundTripsRandomText) {
  const Tokenizer& t = shared_tokenizer();
  std::mt19937_64 rng(2024);
  for (int i = 0; i < 40; ++i) {
    const std::string text = random_text(rng, 1 + rng() % 6000);
    const auto ids = t.encode(text);
    ASSERT_EQ(t.decode(ids), text) << "case " << i;
    for (std::int32_t id : ids) {
      ASSERT_GE(id, kNewlineId);
      ASSERT_LT(id, t.vocab_size());
    }
  }
  // Edge cases one by one.
  for (const std::string& text : std::vector<std::string>{
           " ", "  leading", "trailing  ", "\xE2\x96\x81", "a\xE2\x96\x81 b", "\n\n\n", "\t\t",
           std::string(5000, 'z'), std::string(3000, ' '), "\xF0\x9F\x98\x80\xF0\x9F\x98\x80"}) {
    ASSERT_EQ(t.decode(t.encode(text)), text) << testing::PrintToString(text);
  }
}

TEST(DataTokenizer, SameIdsAsSentencePieceOnWholeDocuments) {
  // Cutting text into units loses nothing: for ordinary text (no literal U+2581, no word over
  // 1024 bytes) the ids equal one SentencePiece call on the whole document.
  const Tokenizer& t = shared_tokenizer();
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.LoadFromSerializedProto(t.serialized()).ok());
  const Corpus corpus = Corpus::brown(test_util::brown_dir_or_fail());
  for (std::size_t i = 7; i < corpus.size(); i += 31) {
    const std::string text = corpus.text(i);
    std::vector<int> whole;
    ASSERT_TRUE(sp.Encode(text, &whole).ok());
    const auto ids = t.encode(text);
    ASSERT_EQ(std::vector<std::int32_t>(whole.begin(), whole.end()), ids) << corpus.key(i);
  }
  const std::string mixed = "Tabs\tand  double  spaces,\n\nnew paragraphs; caf\xC3\xA9 1961.";
  std::vector<int> whole;
  ASSERT_TRUE(sp.Encode(mixed, &whole).ok());
  EXPECT_EQ(std::vector<std::int32_t>(whole.begin(), whole.end()), t.encode(mixed));
}

TEST(DataTokenizer, CachedEncoderMatchesLibraryPath) {
  const Tokenizer& t = shared_tokenizer();
  CachedEncoder cached(t);
  const Corpus corpus = Corpus::brown(test_util::brown_dir_or_fail());
  for (std::size_t i = 3; i < corpus.size(); i += 25) {
    const std::string text = corpus.text(i);
    std::vector<std::int32_t> ids;
    cached.encode(text, ids);
    ASSERT_EQ(ids, t.encode(text)) << corpus.key(i);
  }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 30; ++i) {
    const std::string text = random_text(rng, 1 + rng() % 8000);
    std::vector<std::int32_t> ids;
    cached.encode(text, ids);
    ASSERT_EQ(ids, t.encode(text)) << "case " << i;
  }
  EXPECT_GT(cached.cache_size(), 100u);
  // A tiny cache that is cleared while encoding still gives the same ids.
  CachedEncoder tiny(t, 8);
  const std::string text = corpus.text(0);
  std::vector<std::int32_t> ids;
  tiny.encode(text, ids);
  EXPECT_EQ(ids, t.encode(text));
}

TEST(DataTokenizer, SaveLoadKeepsTheModel) {
  TempDir dir;
  const Tokenizer& t = shared_tokenizer();
  t.save(dir / "tokenizer.model");
  const Tokenizer loaded = Tokenizer::load(dir / "tokenizer.model");
  EXPECT_EQ(loaded.serialized(), t.serialized());
  EXPECT_EQ(loaded.fingerprint(), t.fingerprint());
  const std::string text = "A sentence, with \"quotes\" and 1961 numbers.\n";
  EXPECT_EQ(loaded.encode(text), t.encode(text));
}

TEST(DataTokenizer, ClearErrors) {
  TempDir dir;
  const Tokenizer& t = shared_tokenizer();
  auto message = [](const std::function<void()>& f) -> std::string {
    try {
      f();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message([&] { t.encode("bad \xC3("); }).find("UTF-8"), std::string::npos);
  EXPECT_NE(message([&] {
              t.decode(std::vector<std::int32_t>{5, 800});
            }).find("800"),
            std::string::npos);
  EXPECT_NE(message([&] { Tokenizer::load(dir / "missing.model"); }).find("difftx data prepare"),
            std::string::npos);
  test_util::write_text(dir / "junk.model", "this is not a model");
  EXPECT_NE(message([&] { Tokenizer::load(dir / "junk.model"); }).find("junk.model"),
            std::string::npos);
  TokenizerTrainOptions o;
  o.vocab_size = 100;
  EXPECT_NE(message([&] { Tokenizer::train({"some text"}, o); }).find("too small"),
            std::string::npos);
  o.vocab_size = 4096;
  const std::string big = message([&] { Tokenizer::train({"tiny corpus with few words"}, o); });
  EXPECT_NE(big.find("--vocab-size"), std::string::npos) << big;
  EXPECT_NE(message([&] { Tokenizer::train({}, o); }).find("empty"), std::string::npos);
}

}  // namespace
}  // namespace difftx::data
