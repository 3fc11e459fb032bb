// Corpus = ordered list of documents (Brown files or the user's text files) and the
// deterministic document-level train/validation split.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace difftx::data {

class Corpus {
 public:
  // The installed Brown corpus at `dir` (see brown.h), converted to plain text in memory.
  static Corpus brown(const std::filesystem::path& dir);
  // UTF-8 text files: each path is a file or a folder searched recursively (hidden files and
  // folders, whose names start with '.', are skipped); one file is one document, in sorted
  // path order. Throws if a path does not exist. Files are read when text() is called.
  static Corpus files(const std::vector<std::filesystem::path>& inputs);

  std::size_t size() const { return docs_.size(); }
  // Where document i comes from, for messages (a file path, or "ca01" for Brown).
  const std::string& source(std::size_t i) const { return docs_[i].source; }
  // The name the split hashes: Brown id, or the path relative to its input folder.
  const std::string& key(std::size_t i) const { return docs_[i].key; }
  // Size on disk (files) or of the converted text (Brown); exact once text() was read.
  std::uint64_t size_hint(std::size_t i) const { return docs_[i].size_hint; }
  std::uint64_t total_size_hint() const;
  // The text of document i, checked to be UTF-8 without NUL bytes (throws naming the file).
  std::string text(std::size_t i) const;

  // "brown" or "files", and a one-line description for summaries and meta.json.
  const std::string& kind() const { return kind_; }
  const std::string& description() const { return description_; }

 private:
  struct Doc {
    std::string source;
    std::string key;
    std::filesystem::path path;  // empty when the text is held in memory
    std::string text;            // Brown: the converted text
    std::uint64_t size_hint = 0;
  };
  std::string kind_;
  std::string description_;
  std::vector<Doc> docs_;
};

// The split rule: documents are ordered by SplitMix64(FNV-1a-64(seed as 8 little-endian bytes,
// key)), ties by position; the first round(n * val_fraction) of them are validation, clamped to
// [1, n - 1] when val_fraction > 0 and n >= 2. Returns one flag per key: true = validation.
std::vector<bool> choose_validation(const std::vector<std::string>& keys, double val_fraction,
                                    std::uint64_t seed);

// A human-readable statement of that rule for meta.json.
std::string split_rule_text(double val_fraction, std::uint64_t seed);

// With a single document, the validation part is its tail: returns the byte offset where the
// tail starts, at the line break nearest to (1 - val_fraction) of the text, else the nearest
// space, else a character boundary. The result is in (0, text.size()) for text of 2+ chars.
std::size_t single_document_cut(const std::string& text, double val_fraction);

}  // namespace difftx::data
