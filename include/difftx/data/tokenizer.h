// SentencePiece BPE tokenizer with byte fallback: training, loading, encode/decode, and the
// reserved ids every difftx model and shard relies on.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace difftx::data {

// Reserved ids (identical in every tokenizer difftx trains; checked when one is loaded).
inline constexpr std::int32_t kPadId = 0;        // "<pad>": padding, never a training target
inline constexpr std::int32_t kBosId = 1;        // "<s>": beginning of sequence (prompts)
inline constexpr std::int32_t kEosId = 2;        // "</s>": ends every document in the shards
inline constexpr std::int32_t kUnkId = 3;        // "<unk>": unused with byte fallback
inline constexpr std::int32_t kNewlineId = 4;    // "\n": a user-defined piece, never merged
inline constexpr std::int32_t kFirstByteId = 5;  // "<0x00>" .. "<0xFF>" are ids 5 .. 260
inline constexpr std::int32_t kReservedCount = 261;

struct TokenizerTrainOptions {
  int vocab_size = 4096;
  // Passed to SentencePiece as character_coverage: rarer characters are left to byte fallback.
  double character_coverage = 0.9995;
};

class Tokenizer {
 public:
  Tokenizer() = default;

  // Trains a BPE model on `sentences` (lines of text without '\n'; each at most 8192 bytes).
  // Deterministic: the same sentences and options give a byte-identical model.
  static Tokenizer train(const std::vector<std::string>& sentences,
                         const TokenizerTrainOptions& options);
  // Loads a model file (tokenizer.model) or a serialized model; checks the reserved ids.
  static Tokenizer load(const std::filesystem::path& path);
  static Tokenizer from_serialized(std::string serialized, const std::string& origin);

  // Writes the model atomically.
  void save(const std::filesystem::path& path) const;

  bool loaded() const { return static_cast<bool>(sp_); }
  int vocab_size() const;
  const std::string& piece(std::int32_t id) const;
  // The model file's bytes, and XXH3-64 of them as 16 hex digits (recorded by checkpoints).
  const std::string& serialized() const { return serialized_; }
  std::string fingerprint() const;

  // Encodes UTF-8 text (throws on invalid UTF-8); decode(encode(x)) == x for every valid x.
  // No BOS/EOS is added. Memory stays bounded for arbitrarily long lines (see segments()).
  std::vector<std::int32_t> encode(std::string_view text) const;
  // Decodes ids (control ids such as EOS decode to nothing). Throws on ids out of range.
  std::string decode(std::span<const std::int32_t> ids) const;

  // Whether no piece spans a space or a newline, so text can be encoded word by word
  // (true for every model train() makes; CachedEncoder falls back to encode() otherwise).
  bool word_separable() const { return word_separable_; }

  // Encodes one unit of text that must not be split further (used by CachedEncoder).
  void encode_unit(std::string_view unit, std::vector<std::int32_t>& out) const;

  // Cuts text into units whose encodings concatenate to the encoding of the text: a unit
  // starts at each space, each "\n" and each U+2581 is a unit of its own, and a unit longer
  // than kMaxUnitBytes is cut at character boundaries. Calls `emit(unit, forced_end)` in order;
  // forced_end is true where a unit was cut inside a word.
  static constexpr std::size_t kMaxUnitBytes = 1024;
  template <typename Emit>
  static void segments(std::string_view text, Emit&& emit);

 private:
  std::shared_ptr<const sentencepiece::SentencePieceProcessor> sp_;
  std::string serialized_;
  bool word_separable_ = false;
  std::int32_t space_marker_bytes_[3] = {0, 0, 0};  // byte ids of U+2581 ("\xE2\x96\x81")
};

// Fast encoder for bulk text: caches the ids of each distinct word. Gives exactly the ids of
// Tokenizer::encode. Not thread-safe: use one per thread.
class CachedEncoder {
 public:
  explicit CachedEncoder(const Tokenizer& tokenizer, std::size_t max_entries = 1 << 20);
  // Appends the ids of `text` (valid UTF-8, checked by the caller) to `out`.
  void encode(std::string_view text, std::vector<std::int32_t>& out);
  std::size_t cache_size() const { return cache_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Span {
    std::uint32_t offset, count;  // ids in pool_
  };
  const Tokenizer* tokenizer_;
  std::size_t max_entries_;
  std::unordered_map<std::string, Span, Hash, std::equal_to<>> cache_;
  std::vector<std::int32_t> pool_;
  std::vector<std::int32_t> scratch_;
};

template <typename Emit>
void Tokenizer::segments(std::string_view text, Emit&& emit) {
  static constexpr std::string_view kMarker = "\xE2\x96\x81";  // U+2581, SentencePiece's space
  std::size_t start = 0;
  const std::size_t n = text.size();
  auto emit_range = [&](std::size_t from, std::size_t to) {
    // Cuts over-long units at character boundaries (forced ends).
    while (to - from > kMaxUnitBytes) {
      std::size_t cut = from + kMaxUnitBytes;
      while (cut > from && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
      if (cut == from) cut = from + kMaxUnitBytes;  // not UTF-8: cut anywhere
      emit(text.substr(from, cut - from), true);
      from = cut;
    }
    if (to > from) emit(text.substr(from, to - from), false);
  };
  std::size_t i = 0;
  while (i < n) {
    const char c = text[i];
    if (c == ' ' && i > start) {
      emit_range(start, i);
      start = i;
      ++i;
    } else if (c == '\n') {
      emit_range(start, i);
      emit(text.substr(i, 1), false);
      start = ++i;
    } else if (c == '\xE2' && text.substr(i, 3) == kMarker) {
      emit_range(start, i);
      emit(text.substr(i, 3), false);
      i += 3;
      start = i;
    } else {
      ++i;
    }
  }
  emit_range(start, n);
}

}  // namespace difftx::data
