// TextCodec: difftx tokenizers through data::Tokenizer (the training encoder), other
// SentencePiece models through the library directly.
#include "difftx/serve/text_codec.h"

#include <fmt/format.h>
#include <sentencepiece_processor.h>

#include <fstream>
#include <sstream>

#include "difftx/core/error.h"
#include "difftx/data/tokenizer.h"

namespace difftx::serve {
namespace fs = std::filesystem;

namespace {

const sentencepiece::SentencePieceProcessor& processor_of(
    const std::shared_ptr<const sentencepiece::SentencePieceProcessor>& sp) {
  DIFFTX_CHECK(sp != nullptr, "text codec used before a tokenizer was loaded");
  return *sp;
}

// "<0xAB>" -> 0xAB, or -1 when the piece is not a byte piece.
int byte_of_piece(const std::string& piece) {
  if (piece.size() != 6 || piece.compare(0, 3, "<0x") != 0 || piece[5] != '>') return -1;
  unsigned value = 0;
  for (int i = 3; i < 5; ++i) {
    const char c = piece[static_cast<std::size_t>(i)];
    value <<= 4;
    if (c >= '0' && c <= '9')
      value |= unsigned(c - '0');
    else if (c >= 'A' && c <= 'F')
      value |= unsigned(c - 'A' + 10);
    else
      return -1;
  }
  return static_cast<int>(value);
}

std::string replace_space_marker(std::string piece) {
  static const std::string kMarker = "\xE2\x96\x81";  // U+2581
  std::string out;
  for (std::size_t i = 0; i < piece.size();) {
    if (piece.compare(i, kMarker.size(), kMarker) == 0) {
      out += ' ';
      i += kMarker.size();
    } else {
      out += piece[i++];
    }
  }
  return out;
}

}  // namespace

TextCodec TextCodec::load(const fs::path& model_file) {
  std::error_code ec;
  if (!fs::is_regular_file(model_file, ec)) {
    fail(
        "tokenizer '{}' does not exist: the checkpoint needs a tokenizer.model (difftx checkpoints "
        "carry one; "
        "for a Hugging Face model, `difftx import hf` copies its tokenizer.model)",
        model_file.string());
  }
  std::ifstream in(model_file, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (!in.good() && !in.eof()) fail("cannot read tokenizer '{}'", model_file.string());
  std::string serialized = buffer.str();

  auto sp = std::make_shared<sentencepiece::SentencePieceProcessor>();
  if (const auto status = sp->LoadFromSerializedProto(serialized); !status.ok()) {
    fail(
        "'{}' is not a SentencePiece model ({}); difftx serve reads SentencePiece tokenizer.model "
        "files",
        model_file.string(), status.ToString());
  }
  TextCodec codec;
  try {
    auto tok = std::make_shared<data::Tokenizer>(
        data::Tokenizer::from_serialized(serialized, model_file.string()));
    codec.difftx_ = tok;
    codec.prefix_id_ = data::kEosId;
    codec.eos_id_ = data::kEosId;
    return codec;
  } catch (const Error&) {
    // Not a difftx tokenizer (other reserved ids): a generic SentencePiece model.
  }
  if (sp->eos_id() < 0) {
    fail(
        "tokenizer '{}' defines no end-of-sequence piece; difftx serve needs one to end "
        "generations",
        model_file.string());
  }
  codec.sp_ = sp;
  codec.eos_id_ = sp->eos_id();
  codec.prefix_id_ = sp->bos_id() >= 0 ? sp->bos_id() : sp->eos_id();
  return codec;
}

TextCodec TextCodec::from_tokenizer(const data::Tokenizer& tokenizer) {
  DIFFTX_CHECK(tokenizer.loaded(), "TextCodec::from_tokenizer: the tokenizer is not loaded");
  TextCodec codec;
  codec.difftx_ = std::make_shared<data::Tokenizer>(tokenizer);
  codec.prefix_id_ = data::kEosId;
  codec.eos_id_ = data::kEosId;
  return codec;
}

int TextCodec::vocab_size() const {
  if (difftx_) return difftx_->vocab_size();
  return processor_of(sp_).GetPieceSize();
}

std::vector<std::int32_t> TextCodec::encode(std::string_view text) const {
  if (difftx_) return difftx_->encode(text);
  if (text.find('\0') != std::string_view::npos) fail("text to encode contains a NUL byte");
  std::vector<int> ids;
  if (const auto status = processor_of(sp_).Encode(text, &ids); !status.ok()) {
    fail("SentencePiece could not encode the text: {}", status.ToString());
  }
  return {ids.begin(), ids.end()};
}

std::string TextCodec::decode(std::span<const std::int32_t> ids) const {
  if (difftx_) return difftx_->decode(ids);
  const auto& sp = processor_of(sp_);
  std::vector<int> v(ids.begin(), ids.end());
  for (int id : v) {
    if (id < 0 || id >= sp.GetPieceSize())
      fail("cannot decode token id {}: the tokenizer has {} pieces", id, sp.GetPieceSize());
  }
  std::string text;
  if (const auto status = sp.Decode(v, &text); !status.ok())
    fail("SentencePiece could not decode ids: {}", status.ToString());
  return text;
}

std::string TextCodec::token_bytes(std::int32_t id) const {
  if (id < 0 || id >= vocab_size())
    fail("token id {} is out of range for a tokenizer with {} pieces", id, vocab_size());
  if (difftx_) {
    if (id == data::kNewlineId) return "\n";
    if (id < data::kReservedCount && id < data::kFirstByteId) return "";  // control ids
  } else if (processor_of(sp_).IsControl(id) || processor_of(sp_).IsUnknown(id)) {
    return "";
  }
  const std::string& piece = difftx_ ? difftx_->piece(id) : processor_of(sp_).IdToPiece(id);
  const int byte = byte_of_piece(piece);
  if (byte >= 0) return std::string(1, static_cast<char>(byte));
  return replace_space_marker(piece);
}

std::string TextCodec::token_text(std::int32_t id) const {
  std::string bytes = token_bytes(id);
  if (bytes.size() == 1 && (static_cast<unsigned char>(bytes[0]) & 0x80) != 0) {
    return fmt::format("bytes:\\x{:02x}", static_cast<unsigned char>(bytes[0]));
  }
  return bytes;
}

}  // namespace difftx::serve
