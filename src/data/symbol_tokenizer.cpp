// The symbol tokenizer's SentencePiece model, written as protobuf wire format (see
// symbol_tokenizer.h): ModelProto { repeated SentencePiece pieces = 1; TrainerSpec
// trainer_spec = 2; NormalizerSpec normalizer_spec = 3 }, with the same settings as the models
// Tokenizer::train makes (BPE, byte fallback, identity normalization, no dummy prefix).
#include "difftx/data/symbol_tokenizer.h"

#include <fmt/format.h>

#include <cstring>
#include <string>

#include "difftx/core/error.h"

namespace difftx::data {

namespace {

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}
void put_key(std::string& out, int field, int wire_type) {
  put_varint(out, static_cast<std::uint64_t>(field) << 3 | static_cast<std::uint64_t>(wire_type));
}
void put_int(std::string& out, int field, std::uint64_t v) {
  put_key(out, field, 0);
  put_varint(out, v);
}
void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_key(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}
void put_float(std::string& out, int field, float f) {
  put_key(out, field, 5);
  char b[4];
  std::memcpy(b, &f, 4);  // little-endian hosts (x86-64, aarch64)
  out.append(b, 4);
}

// SentencePiece.Type: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, BYTE 6.
std::string piece(const std::string& text, float score, int type) {
  std::string p;
  put_bytes(p, 1, text);
  put_float(p, 2, score);
  if (type != 1) put_int(p, 3, static_cast<std::uint64_t>(type));
  return p;
}

}  // namespace

Tokenizer make_symbol_tokenizer(int vocab_size) {
  if (vocab_size <= kFirstSymbolId || vocab_size > (1 << 24)) {
    fail("a symbol vocabulary needs more than {} ids (the reserved ones) and at most {}: got {}",
         kFirstSymbolId, 1 << 24, vocab_size);
  }
  std::string model;
  put_bytes(model, 1, piece("<pad>", 0, 3));
  put_bytes(model, 1, piece("<s>", 0, 3));
  put_bytes(model, 1, piece("</s>", 0, 3));
  put_bytes(model, 1, piece("<unk>", 0, 2));
  put_bytes(model, 1, piece("\n", 0, 4));
  for (int b = 0; b < 256; ++b) put_bytes(model, 1, piece(fmt::format("<0x{:02X}>", b), 0, 6));
  for (int id = kFirstSymbolId; id < vocab_size; ++id) {
    put_bytes(model, 1, piece(fmt::format("\xE2\x96\x81s{}", id), -static_cast<float>(id), 1));
  }
  std::string trainer;
  put_int(trainer, 3, 2);  // model_type BPE
  put_int(trainer, 4, static_cast<std::uint64_t>(vocab_size));
  put_int(trainer, 35, 1);  // byte_fallback
  put_int(trainer, 40, static_cast<std::uint64_t>(kUnkId));
  put_int(trainer, 41, static_cast<std::uint64_t>(kBosId));
  put_int(trainer, 42, static_cast<std::uint64_t>(kEosId));
  put_int(trainer, 43, static_cast<std::uint64_t>(kPadId));
  put_bytes(model, 2, trainer);
  std::string normalizer;
  put_bytes(normalizer, 1, "identity");
  put_int(normalizer, 3, 0);  // add_dummy_prefix
  put_int(normalizer, 4, 0);  // remove_extra_whitespaces
  put_bytes(model, 3, normalizer);
  return Tokenizer::from_serialized(std::move(model), "the symbol tokenizer");
}

}  // namespace difftx::data
