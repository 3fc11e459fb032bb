// The server's tokenizer: a difftx tokenizer.model (ids as in training; prompts follow the
// end-of-text separator, as in the shards) or any other SentencePiece model, e.g. the one a
// Llama-family checkpoint imported with `difftx import hf` carries (prompts follow its BOS).
// Thread-safe for concurrent use once loaded (every method is const).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace difftx::data {
class Tokenizer;
}

namespace difftx::serve {

class TextCodec {
 public:
  // Loads a SentencePiece model file; a difftx tokenizer is recognised by its reserved ids.
  // Throws difftx::Error naming the file if it is not a SentencePiece model.
  static TextCodec load(const std::filesystem::path& model_file);
  // A difftx tokenizer already in memory (tests, tools).
  static TextCodec from_tokenizer(const data::Tokenizer& tokenizer);

  bool is_difftx() const { return difftx_ != nullptr; }
  int vocab_size() const;
  std::int32_t prompt_prefix_id() const { return prefix_id_; }  // fed before every prompt
  std::int32_t eos_id() const { return eos_id_; }               // ends a generation

  // Throws difftx::Error on text the tokenizer refuses (invalid UTF-8, NUL).
  std::vector<std::int32_t> encode(std::string_view text) const;
  // Control ids decode to nothing; byte pieces to their bytes (a trailing incomplete UTF-8
  // sequence may come back as raw bytes or as U+FFFD, depending on the model).
  std::string decode(std::span<const std::int32_t> ids) const;
  // The text of one token for log-probability listings: the piece with U+2581 as a space;
  // a byte piece <0xAB> as "bytes:\xab" (OpenAI's convention for partial characters).
  std::string token_text(std::int32_t id) const;
  // The raw bytes one token contributes (byte pieces: that byte; control ids: none).
  std::string token_bytes(std::int32_t id) const;

 private:
  std::shared_ptr<const data::Tokenizer> difftx_;                    // a difftx tokenizer, or
  std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp_;  // any SentencePiece model
  std::int32_t prefix_id_ = 0;
  std::int32_t eos_id_ = 0;
};

}  // namespace difftx::serve
