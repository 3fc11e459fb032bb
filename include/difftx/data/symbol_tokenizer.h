// A tokenizer for synthetic tasks whose tokens are abstract symbols (MQAR): a SentencePiece
// model built directly (no training) with difftx's 261 reserved ids and then one piece per
// symbol id, "▁s<id>" (decodes as " s<id>"), so a task folder is a complete data folder that
// `train`, `generate` and the folder checks accept like any other.
#pragma once

#include <cstdint>

#include "difftx/data/tokenizer.h"

namespace difftx::data {

// The first id of the symbols (ids below are the reserved ones of every difftx tokenizer).
inline constexpr std::int32_t kFirstSymbolId = kReservedCount;

// A model of exactly `vocab_size` pieces (> kReservedCount).
Tokenizer make_symbol_tokenizer(int vocab_size);

}  // namespace difftx::data
