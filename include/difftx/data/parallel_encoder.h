// Encodes a batch of text pieces on several threads (one CachedEncoder each); the results keep
// the pieces' order, so the output does not depend on the number of threads.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "difftx/data/tokenizer.h"

namespace difftx::data {

class ParallelEncoder {
 public:
  ParallelEncoder(const Tokenizer& tokenizer, int threads);
  int threads() const { return static_cast<int>(encoders_.size()); }
  // out[i] = the ids of texts[i]. Each text must be valid UTF-8 and start at a unit boundary
  // of Tokenizer::segments (the start of a document, a space or a newline).
  void run(const std::vector<std::string_view>& texts, std::vector<std::vector<std::int32_t>>& out);

 private:
  std::vector<CachedEncoder> encoders_;
};

// Cuts text into pieces of about `piece_bytes`, each cut just before a space or a newline (a
// unit boundary, so the pieces' ids concatenate to the text's ids). Returns the piece lengths.
std::vector<std::size_t> cut_at_unit_boundaries(std::string_view text, std::size_t piece_bytes);

}  // namespace difftx::data
