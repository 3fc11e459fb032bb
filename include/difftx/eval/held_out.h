// Held-out text for the evaluation tasks: the validation split of a prepared data folder
// (`difftx data prepare`) or raw UTF-8 text files. Tasks take documents (ppl, icl), sentences
// (needle haystacks, icl examples) or a token stream per model tokenizer from it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "difftx/data/tokenizer.h"

namespace difftx::eval {

struct HeldOutSource {
  std::filesystem::path data;               // a prepared data folder: its val-*.tokens
  std::vector<std::filesystem::path> text;  // or text files / folders (one file = one document)
};

// Documents' tokens, each document followed by EOS (the shard convention), and the UTF-8 bytes of
// the text they encode (EOS: 0 bytes), for bits per byte.
struct TokenStream {
  std::vector<std::int32_t> tokens;
  std::uint64_t bytes = 0;
  bool from_shards = false;  // equal to the data folder's shards (its tokenizer is the model's)
};

class HeldOutText {
 public:
  // Exactly one of data / text must be given. Throws naming the path for a folder without a
  // validation split or tokenizer, unreadable or non-UTF-8 files, or no text at all.
  static HeldOutText load(const HeldOutSource& source);

  const std::vector<std::string>& documents() const { return documents_; }
  std::uint64_t bytes() const;
  // {"kind": "data" | "text", "paths": [...], "documents", "bytes", "tokenizer" (data only)}
  nlohmann::json describe() const;

  // The stream for `tokenizer`, at most max_tokens tokens (0: all; a document cut short counts
  // the bytes of its kept tokens). With a data folder's own tokenizer this is its shard stream.
  TokenStream tokens(const data::Tokenizer& tokenizer, std::uint64_t max_tokens) const;

  // Every sentence of every document, in order (see split_sentences).
  std::vector<std::string> sentences() const;

 private:
  std::string kind_;
  std::vector<std::string> paths_;
  std::vector<std::string> documents_;
  std::string shard_tokenizer_;  // data folder: its tokenizer's fingerprint
};

// Sentences of a text: cut after '.', '?' or '!' (with closing quotes or brackets) followed by
// whitespace, and at line breaks; whitespace runs inside a sentence become one space; sentences
// are trimmed and empty ones dropped.
std::vector<std::string> split_sentences(const std::string& text);

}  // namespace difftx::eval
