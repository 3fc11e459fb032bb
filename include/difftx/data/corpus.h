// Corpus = ordered list of input files (Brown files held in memory, or the user's files: plain
// text, JSONL, token files; plain or compressed) and the deterministic train/validation split.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace difftx::data {

// What a corpus file holds, from its name without a compression suffix: "*.jsonl" /
// "*.ndjson" are JSON lines (one document per line, text in a field), "*.bin" are token files
// (llm.c or nanoGPT), anything else is UTF-8 text (one file = one document).
enum class InputFormat { text, jsonl, tokens };
const char* input_format_name(InputFormat f);
InputFormat input_format_of(const std::filesystem::path& path);

class Corpus {
 public:
  // The installed Brown corpus at `dir` (see brown.h), converted to plain text in memory.
  static Corpus brown(const std::filesystem::path& dir);
  // Files: each path is a file or a folder searched recursively (hidden files and folders,
  // whose names start with '.', are skipped), in sorted path order, `inputs` first, then
  // `validation_inputs` (whose documents all go to the validation split). Throws if a path
  // does not exist or an entry is not a regular file (a FIFO, a dangling link, ...). Files are
  // read when their documents are streamed.
  static Corpus files(const std::vector<std::filesystem::path>& inputs,
                      const std::vector<std::filesystem::path>& validation_inputs = {});

  std::size_t size() const { return docs_.size(); }
  // Where file i comes from, for messages (a path, or "ca01" for Brown).
  const std::string& source(std::size_t i) const { return docs_[i].source; }
  // The name the split hashes: Brown id, or the path relative to its input folder.
  const std::string& key(std::size_t i) const { return docs_[i].key; }
  InputFormat format(std::size_t i) const { return docs_[i].format; }
  // Whether the file was given with --val-input.
  bool validation_input(std::size_t i) const { return docs_[i].validation; }
  // The file on disk (empty for Brown, whose text is in memory).
  const std::filesystem::path& path(std::size_t i) const { return docs_[i].path; }
  // The converted text of an in-memory document (Brown).
  const std::string& held_text(std::size_t i) const { return docs_[i].text; }
  // Size on disk (files) or of the converted text (Brown).
  std::uint64_t size_hint(std::size_t i) const { return docs_[i].size_hint; }
  std::uint64_t total_size_hint() const;
  // The text of document i read whole, checked to be UTF-8 without NUL bytes (throws naming
  // the file); for small text files and Brown (tests, benchmarks).
  std::string text(std::size_t i) const;
  bool any_validation_inputs() const;

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
    InputFormat format = InputFormat::text;
    bool validation = false;
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

// The rule for documents that cannot all be listed first (JSONL lines): a document is
// validation when SplitMix64(FNV-1a-64(seed, key)) / 2^64 < val_fraction.
bool hash_chooses_validation(const std::string& key, double val_fraction, std::uint64_t seed);

// A human-readable statement of the rules for meta.json.
std::string split_rule_text(double val_fraction, std::uint64_t seed);

// With a single document, the validation part is its tail: returns the byte offset where the
// tail starts, at the line break nearest to (1 - val_fraction) of the text, else the nearest
// space, else a character boundary. The result is in (0, text.size()) for text of 2+ chars.
std::size_t single_document_cut(const std::string& text, double val_fraction);

// The same cut computed in one pass over a stream of `size` bytes fed in order to add().
class TailCutFinder {
 public:
  TailCutFinder(std::uint64_t size, double val_fraction);
  void add(const char* data, std::size_t n);
  std::uint64_t cut() const;  // after all `size` bytes were added

 private:
  std::uint64_t n_, target_, seen_ = 0;
  std::uint64_t nl_before_ = 0, nl_after_ = 0, sp_before_ = 0, sp_after_ = 0;  // cut + 1; 0 = none
  bool has_nl_before_ = false, has_nl_after_ = false, has_sp_before_ = false, has_sp_after_ = false;
  unsigned char window_[5] = {};  // bytes target-4 .. target
};

}  // namespace difftx::data
