// Streams the documents of one corpus file in order, in bounded memory: a plain text file is
// one document read piece by piece; a JSONL file gives one document per line (the text of a
// chosen string field); Brown documents come from memory.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "difftx/data/corpus.h"
#include "difftx/data/input_source.h"

namespace difftx::data {

// The longest JSONL line accepted (a document larger than this belongs in a text file).
inline constexpr std::size_t kMaxJsonlLineBytes = std::size_t{1} << 30;

class DocumentReader {
 public:
  // `jsonl_field` names the text field of JSONL files. The file must not be a token file.
  DocumentReader(const Corpus& corpus, std::size_t file, std::string jsonl_field);
  DocumentReader(const DocumentReader&) = delete;
  DocumentReader& operator=(const DocumentReader&) = delete;
  ~DocumentReader();

  // Moves to the next document; false at the end of the file. Blank JSONL lines are skipped;
  // a line that is not a JSON object with a string field `jsonl_field` throws, naming the
  // file and the line.
  bool next_document();
  // 0 for a text file (its only document), the 1-based line number for JSONL.
  std::uint64_t document_number() const { return number_; }
  // Appends up to `max` more bytes of the current document's text to `out`; returns false
  // (appending nothing) at the end of the document.
  bool read(std::string& out, std::size_t max);
  // On-disk bytes consumed so far, for progress.
  std::uint64_t disk_bytes_read() const;

 private:
  const Corpus& corpus_;
  std::size_t file_;
  std::string field_;
  std::unique_ptr<ByteSource> source_;
  std::unique_ptr<LineReader> lines_;
  std::string line_, text_;  // JSONL: the current line and its document's text
  std::size_t text_pos_ = 0;
  std::uint64_t number_ = 0;
  bool started_ = false, in_document_ = false, source_done_ = false;
};

}  // namespace difftx::data
