// Brown corpus: detokenisation rules, a hand-checked excerpt of ca01, the installed file list
// and the deterministic document split.
#include <gtest/gtest.h>

#include <set>

#include "data_test_util.h"
#include "difftx/data/brown.h"
#include "difftx/data/corpus.h"

namespace difftx::data {
namespace {

TEST(DataBrown, DetokenizesPunctuationQuotesAndParagraphs) {
  const std::string tagged =
      "\n\n\tHe/pps said/vbd ``/`` no/at ''/'' ,/, and/cc left/vbd ./.\n"
      "It/pps was/bedz (/( he/pps thought/vbd )/) late/jj ;/. very/ql late/jj !/.\n\n\n"
      "Merger/nn-hl proposed/vbn-hl\n"
      "She/pps met/vbd Ivan/np Allen/np Jr./np ./.\n\n"
      "\t'/' Back/rb '/' ,/, she/pps said/vbd --/-- twice/rb ./.\n";
  const std::string expected =
      "He said \"no\", and left. It was (he thought) late; very late!\n\n"
      "Merger proposed\n\n"
      "She met Ivan Allen Jr.\n\n"
      "'Back', she said--twice.\n";
  EXPECT_EQ(brown_to_text(tagged), expected);
  EXPECT_EQ(brown_to_text(""), "");
  EXPECT_EQ(brown_to_text("\n\n  \n"), "");
}

TEST(DataBrown, InstalledPackageHas500Files) {
  const auto files = list_brown_files(test_util::brown_dir_or_fail());
  ASSERT_EQ(files.size(), 500u);
  EXPECT_EQ(files.front().id, "ca01");
  EXPECT_EQ(files.front().category, "news");
  EXPECT_EQ(files.back().id, "cr09");
  std::set<std::string> categories;
  for (const auto& f : files) categories.insert(f.category);
  EXPECT_EQ(categories.size(), 15u);
}

TEST(DataBrown, Ca01MatchesHandCheckedExcerpt) {
  const fs::path dir = test_util::brown_dir_or_fail();
  const std::string text = brown_to_text(read_file_text(dir / "ca01"));
  // Checked by hand against the tagged file: tags gone, `` '' as quotes, punctuation attached,
  // "Jr./np ./." as one period, the headline "Merger proposed" as its own paragraph.
  const std::string opening =
      "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary "
      "election produced \"no evidence\" that any irregularities took place.\n\n"
      "The jury further said in term-end presentments that the City Executive Committee, which "
      "had over-all charge of the election, \"deserves the praise and thanks of the City of "
      "Atlanta\" for the manner in which the election was conducted.\n\n"
      "The September-October term jury had been charged by Fulton Superior Court Judge Durwood "
      "Pye to investigate reports of possible \"irregularities\" in the hard-fought primary which "
      "was won by Mayor-nominate Ivan Allen Jr.\n\n"
      "\"Only a relative handful of such reports was received\", the jury said, \"considering the "
      "widespread interest in the election, the number of voters and the size of this city\".\n\n";
  EXPECT_EQ(text.substr(0, opening.size()), opening);
  const std::string headline =
      "which inure to the best interest of both governments\".\n\n"
      "Merger proposed\n\n"
      "However, the jury said it believes \"these two offices should be combined to achieve "
      "greater efficiency and reduce the cost of administration\".\n\n"
      "The City Purchasing Department, the jury said, \"is lacking in experienced clerical "
      "personnel as a result of city personnel policies\". It urged that the city \"take steps "
      "to remedy\" this problem.\n\n";
  EXPECT_NE(text.find(headline), std::string::npos);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(text.find('/'), std::string::npos) << "a tag survived";
  EXPECT_EQ(text.find("``"), std::string::npos);
  EXPECT_EQ(text.find(" ,"), std::string::npos);
}

TEST(DataBrown, WholeCorpusConvertsToCleanText) {
  const Corpus corpus = Corpus::brown(test_util::brown_dir_or_fail());
  ASSERT_EQ(corpus.size(), 500u);
  std::uint64_t bytes = 0;
  for (std::size_t i = 0; i < corpus.size(); ++i) {
    const std::string t = corpus.text(i);
    ASSERT_FALSE(t.empty()) << corpus.key(i);
    EXPECT_EQ(t.find("``"), std::string::npos) << corpus.key(i);
    EXPECT_EQ(t.find("\n\n\n"), std::string::npos) << corpus.key(i);
    bytes += t.size();
  }
  // About 1.16M words in 6 MB of text.
  EXPECT_GT(bytes, 5'500'000u);
  EXPECT_LT(bytes, 6'500'000u);
}

TEST(DataSplit, DeterministicExactAndSpread) {
  const auto files = list_brown_files(test_util::brown_dir_or_fail());
  std::vector<std::string> keys;
  for (const auto& f : files) keys.push_back(f.id);
  const auto a = choose_validation(keys, 0.05, 1);
  EXPECT_EQ(a, choose_validation(keys, 0.05, 1));
  EXPECT_NE(a, choose_validation(keys, 0.05, 2));
  EXPECT_EQ(std::count(a.begin(), a.end(), true), 25);
  // The chosen documents come from many categories (the hash is well mixed).
  std::set<std::string> categories;
  for (std::size_t i = 0; i < keys.size(); ++i)
    if (a[i]) categories.insert(files[i].category);
  EXPECT_GE(categories.size(), 6u);
  // Independent of the order the documents are listed in.
  std::vector<std::string> reversed(keys.rbegin(), keys.rend());
  const auto b = choose_validation(reversed, 0.05, 1);
  for (std::size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(a[i], b[keys.size() - 1 - i]);
}

TEST(DataSplit, EdgeCases) {
  EXPECT_EQ(choose_validation({"a", "b", "c"}, 0.0, 1), std::vector<bool>(3, false));
  const auto two = choose_validation({"a", "b"}, 0.01, 1);
  EXPECT_EQ(std::count(two.begin(), two.end(), true), 1);  // at least one
  const auto most = choose_validation({"a", "b", "c"}, 0.5, 1);
  EXPECT_LE(std::count(most.begin(), most.end(), true), 2);
  EXPECT_EQ(choose_validation({"only"}, 0.1, 1), std::vector<bool>(1, false));
}

TEST(DataSplit, SingleDocumentCutsAtALineBreak) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "line number " + std::to_string(i) + "\n";
  const std::size_t cut = single_document_cut(text, 0.1);
  ASSERT_GT(cut, 0u);
  ASSERT_LT(cut, text.size());
  EXPECT_EQ(text[cut - 1], '\n');
  EXPECT_NEAR(static_cast<double>(cut) / text.size(), 0.9, 0.02);
  const std::string one_line = "word another word yet another word";
  const std::size_t c2 = single_document_cut(one_line, 0.3);
  EXPECT_EQ(one_line[c2 - 1], ' ');
}

}  // namespace
}  // namespace difftx::data
