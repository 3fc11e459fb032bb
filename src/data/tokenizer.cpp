// SentencePiece-backed tokenizer: deterministic BPE training, model checks, encode/decode.
#include "difftx/data/tokenizer.h"

#include <fmt/format.h>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <exception>
#include <unordered_map>

#include "difftx/core/atomic_file.h"
#include "difftx/core/checksum.h"
#include "difftx/core/error.h"
#include "difftx/data/text.h"

namespace difftx::data {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // U+2581 "▁"
constexpr std::size_t kLibraryBatchBytes = 16 * 1024;

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& v) : v_(v) {}
  bool done() const override { return i_ >= v_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return v_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& v_;
  std::size_t i_ = 0;
};

}  // namespace

Tokenizer Tokenizer::train(const std::vector<std::string>& sentences,
                           const TokenizerTrainOptions& options) {
  if (options.vocab_size < kReservedCount + 64) {
    fail(
        "vocabulary size {} is too small: it must be at least {} ({} reserved and byte pieces "
        "plus room for characters and merges)",
        options.vocab_size, kReservedCount + 64, kReservedCount);
  }
  if (sentences.empty()) fail("cannot train a tokenizer on an empty corpus");
  // Every setting that affects the result is fixed here, so training is deterministic:
  // all sentences are used in order (no sampling or shuffling), one thread, identity
  // normalisation (so decode(encode(x)) == x), no dummy prefix, "\n" as an atomic piece.
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"byte_fallback", "true"},
      {"character_coverage", fmt::format("{}", options.character_coverage)},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "false"},
      {"split_by_whitespace", "true"},
      {"split_by_unicode_script", "true"},
      {"split_digits", "true"},
      {"allow_whitespace_only_pieces", "false"},
      {"treat_whitespace_as_suffix", "false"},
      {"pad_id", std::to_string(kPadId)},
      {"bos_id", std::to_string(kBosId)},
      {"eos_id", std::to_string(kEosId)},
      {"unk_id", std::to_string(kUnkId)},
      {"user_defined_symbols", "\n"},
      {"input_sentence_size", "0"},
      {"shuffle_input_sentence", "false"},
      {"max_sentence_length", "8192"},
      {"num_threads", "1"},
      {"minloglevel", "2"},
  };
  VectorIterator it(sentences);
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &model);
  if (!status.ok()) {
    fail(
        "SentencePiece could not train a {}-piece BPE tokenizer: {} (for a small corpus, "
        "lower --vocab-size)",
        options.vocab_size, status.ToString());
  }
  return from_serialized(std::move(model), "the newly trained tokenizer");
}

Tokenizer Tokenizer::load(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    fail(
        "tokenizer model '{}' does not exist: run `difftx data prepare` to make one (it is "
        "written next to the token shards)",
        path.string());
  }
  return from_serialized(read_file_text(path), path.string());
}

Tokenizer Tokenizer::from_serialized(std::string serialized, const std::string& origin) {
  auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
  sentencepiece::util::Status status;
  try {
    status = sp->LoadFromSerializedProto(serialized);
  } catch (const std::exception& e) {
    // SentencePiece's trie builder (darts-clone) throws on some malformed models, e.g. an
    // empty piece ("failed to insert key: zero-length key"; a fuzz finding)
    fail("'{}' is not a usable SentencePiece model: {}", origin, e.what());
  }
  if (!status.ok()) {
    fail("'{}' is not a SentencePiece model: {}", origin, status.ToString());
  }
  auto expect = [&](const char* what, int actual, int wanted) {
    if (actual != wanted) {
      fail(
          "'{}' is not a difftx tokenizer: {} id is {}, expected {} (difftx reserves 0 <pad>, "
          "1 <s>, 2 </s>, 3 <unk>, 4 newline, 5..260 bytes); make one with `difftx data "
          "prepare`",
          origin, what, actual, wanted);
    }
  };
  expect("<pad>", sp->pad_id(), kPadId);
  expect("<s>", sp->bos_id(), kBosId);
  expect("</s>", sp->eos_id(), kEosId);
  expect("<unk>", sp->unk_id(), kUnkId);
  expect("newline", sp->PieceToId("\n"), kNewlineId);
  for (int b = 0; b < 256; ++b) {
    const int id = sp->PieceToId(fmt::format("<0x{:02X}>", b));
    expect(fmt::format("byte <0x{:02X}>", b).c_str(), sp->IsByte(id) ? id : -1, kFirstByteId + b);
  }

  Tokenizer t;
  t.sp_ = sp;
  t.serialized_ = std::move(serialized);
  t.space_marker_bytes_[0] = kFirstByteId + 0xE2;
  t.space_marker_bytes_[1] = kFirstByteId + 0x96;
  t.space_marker_bytes_[2] = kFirstByteId + 0x81;

  // Word separability: no piece holds "▁" after its first character or a newline (except the
  // newline piece), and encoding a probe word by word equals encoding it whole.
  bool separable = true;
  for (int id = 0; id < sp->GetPieceSize() && separable; ++id) {
    if (sp->IsByte(id) || sp->IsControl(id) || id == kNewlineId) continue;
    const std::string& p = sp->IdToPiece(id);
    if (p.find('\n') != std::string::npos) separable = false;
    const std::size_t marker = p.find(kSpaceMarker, p.rfind(kSpaceMarker, 0) == 0 ? 3 : 0);
    if (marker != std::string::npos) separable = false;
  }
  if (separable) {
    const std::string probe = "The  quick\nbrown fox, 1961.";
    std::vector<int> whole;
    (void)sp->Encode(probe, &whole);
    std::vector<std::int32_t> parts;
    segments(probe, [&](std::string_view unit, bool) {
      std::vector<int> ids;
      (void)sp->Encode(unit, &ids);
      parts.insert(parts.end(), ids.begin(), ids.end());
    });
    separable = std::vector<std::int32_t>(whole.begin(), whole.end()) == parts;
  }
  t.word_separable_ = separable;
  return t;
}

void Tokenizer::save(const fs::path& path) const {
  DIFFTX_CHECK(loaded(), "cannot save an empty tokenizer to '{}'", path.string());
  write_file_atomic(path, std::string_view(serialized_));
}

int Tokenizer::vocab_size() const {
  DIFFTX_CHECK(loaded(), "tokenizer used before it was loaded");
  return sp_->GetPieceSize();
}

const std::string& Tokenizer::piece(std::int32_t id) const {
  if (id < 0 || id >= vocab_size()) {
    fail("token id {} is out of range for a tokenizer with {} pieces", id, vocab_size());
  }
  return sp_->IdToPiece(id);
}

std::string Tokenizer::fingerprint() const {
  return hex64(checksum64(serialized_));
}

void Tokenizer::encode_unit(std::string_view unit, std::vector<std::int32_t>& out) const {
  if (unit == kSpaceMarker) {
    // A literal U+2581 would decode as a space through the library: spell it in bytes.
    out.insert(out.end(), std::begin(space_marker_bytes_), std::end(space_marker_bytes_));
    return;
  }
  std::vector<int> ids;
  const auto status = sp_->Encode(unit, &ids);
  if (!status.ok()) fail("SentencePiece could not encode text: {}", status.ToString());
  out.insert(out.end(), ids.begin(), ids.end());
}

std::vector<std::int32_t> Tokenizer::encode(std::string_view text) const {
  DIFFTX_CHECK(loaded(), "tokenizer used before it was loaded");
  require_text(text, "text to encode");
  std::vector<std::int32_t> out;
  out.reserve(text.size() / 3 + 8);
  // Consecutive units go to the library together (up to 16 kB), so it sees whole lines; a
  // batch ends at a unit cut inside a word and around each literal U+2581.
  std::size_t batch_start = 0, batch_end = 0;
  auto flush = [&] {
    if (batch_end > batch_start)
      encode_unit(text.substr(batch_start, batch_end - batch_start), out);
    batch_start = batch_end;
  };
  segments(text, [&](std::string_view unit, bool forced_end) {
    const auto begin = static_cast<std::size_t>(unit.data() - text.data());
    if (unit == kSpaceMarker) {
      flush();
      encode_unit(unit, out);
      batch_start = batch_end = begin + unit.size();
      return;
    }
    if (begin + unit.size() - batch_start > kLibraryBatchBytes) flush();
    batch_end = begin + unit.size();
    if (forced_end) flush();
  });
  flush();
  return out;
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids) const {
  DIFFTX_CHECK(loaded(), "tokenizer used before it was loaded");
  const int n = vocab_size();
  std::vector<int> v(ids.begin(), ids.end());
  for (int id : v) {
    if (id < 0 || id >= n) fail("cannot decode token id {}: the tokenizer has {} pieces", id, n);
  }
  std::string text;
  const auto status = sp_->Decode(v, &text);
  if (!status.ok()) fail("SentencePiece could not decode ids: {}", status.ToString());
  return text;
}

CachedEncoder::CachedEncoder(const Tokenizer& tokenizer, std::size_t max_entries)
    : tokenizer_(&tokenizer), max_entries_(max_entries) {}

void CachedEncoder::encode(std::string_view text, std::vector<std::int32_t>& out) {
  if (!tokenizer_->word_separable()) {
    const auto ids = tokenizer_->encode(text);
    out.insert(out.end(), ids.begin(), ids.end());
    return;
  }
  constexpr std::size_t kMaxCachedUnit = 64;
  Tokenizer::segments(text, [&](std::string_view unit, bool) {
    if (unit.size() > kMaxCachedUnit) {
      tokenizer_->encode_unit(unit, out);
      return;
    }
    auto it = cache_.find(unit);
    if (it == cache_.end()) {
      if (cache_.size() >= max_entries_) {
        cache_.clear();
        pool_.clear();
      }
      scratch_.clear();
      tokenizer_->encode_unit(unit, scratch_);
      const Span span{static_cast<std::uint32_t>(pool_.size()),
                      static_cast<std::uint32_t>(scratch_.size())};
      pool_.insert(pool_.end(), scratch_.begin(), scratch_.end());
      it = cache_.emplace(std::string(unit), span).first;
    }
    const std::int32_t* ids = pool_.data() + it->second.offset;
    out.insert(out.end(), ids, ids + it->second.count);
  });
}

}  // namespace difftx::data
