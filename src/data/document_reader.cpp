// Document streams of text, JSONL and in-memory (Brown) corpus files (see document_reader.h).
#include "difftx/data/document_reader.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "difftx/core/error.h"

namespace difftx::data {

DocumentReader::DocumentReader(const Corpus& corpus, std::size_t file, std::string jsonl_field)
    : corpus_(corpus), file_(file), field_(std::move(jsonl_field)) {
  DIFFTX_CHECK(corpus.format(file) != InputFormat::tokens,
               "'{}' is a token file, not text: it has no documents to read", corpus.source(file));
  if (!corpus.path(file).empty()) {
    source_ = open_byte_source(corpus.path(file));
    if (corpus.format(file) == InputFormat::jsonl) {
      lines_ = std::make_unique<LineReader>(*source_, corpus.source(file));
    }
  }
}

DocumentReader::~DocumentReader() = default;

bool DocumentReader::next_document() {
  if (corpus_.format(file_) != InputFormat::jsonl) {
    if (started_) {
      in_document_ = false;
      return false;
    }
    started_ = in_document_ = true;
    number_ = 0;
    return true;
  }
  while (lines_->next(line_, kMaxJsonlLineBytes)) {
    if (line_.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank line
    const std::uint64_t n = lines_->line_number();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line_);
    } catch (const nlohmann::json::exception& e) {
      fail(
          "line {} of '{}' is not valid JSON ({}): each line of a .jsonl file must be one JSON "
          "object",
          n, corpus_.source(file_), e.what());
    }
    if (!j.is_object() || !j.contains(field_) || !j[field_].is_string()) {
      fail(
          "line {} of '{}' has no string field \"{}\": pass the field that holds the text with "
          "--jsonl-field",
          n, corpus_.source(file_), field_);
    }
    text_ = j[field_].get<std::string>();
    text_pos_ = 0;
    number_ = n;
    in_document_ = true;
    return true;
  }
  in_document_ = false;
  return false;
}

bool DocumentReader::read(std::string& out, std::size_t max) {
  if (!in_document_ || max == 0) return false;
  if (corpus_.format(file_) == InputFormat::jsonl || source_ == nullptr) {
    const std::string& text = source_ == nullptr ? corpus_.held_text(file_) : text_;
    if (text_pos_ >= text.size()) return false;
    const std::size_t n = std::min(max, text.size() - text_pos_);
    out.append(text, text_pos_, n);
    text_pos_ += n;
    return true;
  }
  if (source_done_) return false;
  const std::size_t old = out.size();
  out.resize(old + max);
  const std::size_t n = source_->read(out.data() + old, max);
  out.resize(old + n);
  if (n == 0) source_done_ = true;
  return n > 0;
}

std::uint64_t DocumentReader::disk_bytes_read() const {
  if (source_ == nullptr) return text_pos_;
  return source_->disk_bytes_read();
}

}  // namespace difftx::data
