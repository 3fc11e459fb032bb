// The tokenizer files of a Hugging Face export, made from a difftx SentencePiece BPE model:
// tokenizer.json (a `tokenizers` BPE with byte fallback that reproduces the SentencePiece ids),
// tokenizer_config.json and special_tokens_map.json, so AutoTokenizer loads them with no
// conversion. tokenizer.model itself is copied next to them by the export.
//
// The pipeline mirrors how difftx trains its tokenizers (difftx/data/tokenizer.h): identity
// normalisation, no dummy prefix, spaces as U+2581 starting a new word, "\n" an atomic piece,
// bytes for uncovered characters. No BOS/EOS is added (as Tokenizer::encode). One difference:
// a literal U+2581 in the text, which difftx spells as three byte tokens, is a space to HF.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace difftx::hf {

struct HfTokenizerFiles {
  nlohmann::json tokenizer;           // tokenizer.json
  nlohmann::json tokenizer_config;    // tokenizer_config.json
  nlohmann::json special_tokens_map;  // special_tokens_map.json
  int vocab_size = 0;                 // pieces in the model
};

// Builds the files from a difftx tokenizer.model. Throws difftx::Error if the model is not a
// difftx tokenizer (reserved ids, byte pieces) or behaves differently from difftx training
// settings (a dummy prefix or a normalisation that changes text). `model_max_length` goes to
// tokenizer_config.json.
HfTokenizerFiles hf_tokenizer_files(const std::filesystem::path& spm_model, int model_max_length);

// The BPE merges of tokenizer.json for a SentencePiece BPE model, best first: every split of a
// normal piece into two normal pieces, ordered by the merged piece's score (then by ids).
std::vector<std::pair<std::string, std::string>> bpe_merges(const std::filesystem::path& spm_model);

}  // namespace difftx::hf
