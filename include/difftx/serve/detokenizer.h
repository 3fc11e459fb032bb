// Incremental detokenisation for streaming: turns generated token ids into text pieces as soon
// as they form complete characters. Decodes a short window of ids (a few tokens of context,
// starting in the prompt, plus the new ones) so that pieces whose rendering depends on their
// neighbours (SentencePiece's leading space) come out as in a whole-sequence decode.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "difftx/serve/text_codec.h"

namespace difftx::serve {

class IncrementalDetokenizer {
 public:
  // `prompt`: the ids fed to the model; its last few ids are the decoding context.
  IncrementalDetokenizer(const TextCodec& codec, std::span<const std::int32_t> prompt);

  // The text that `token` completes ("" while a multi-byte character is still partial).
  std::string push(std::int32_t token);
  // Text still held back (an incomplete character at the end of the generation).
  std::string finish();

 private:
  const TextCodec* codec_;
  std::vector<std::int32_t> ids_;  // context + generated ids
  std::size_t prefix_ = 0;         // ids_[prefix_, read_) were decoded and emitted already
  std::size_t read_ = 0;
};

// Whether `text` ends inside a UTF-8 sequence or with U+FFFD (a decoder's placeholder for bytes
// that may still be completed by the next token).
bool ends_with_partial_character(const std::string& text);

}  // namespace difftx::serve
