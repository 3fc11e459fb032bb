// `difftx data prepare`: corpus -> split -> tokenizer (trained on a sample, or reused) ->
// token shards + meta.json. Streamed (memory does not grow with the corpus), encoded on all
// cores, resumable (an interrupted run continues from its last finished shard), and
// all-or-nothing for the output folder (files are staged and moved into place at the end).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "difftx/core/progress.h"
#include "difftx/data/data_folder.h"

namespace difftx::data {

inline constexpr const char* kDefaultOutDir = "data/brown";
inline constexpr int kDefaultVocabSize = 4096;

struct PrepareOptions {
  // Files or folders: text, JSONL (*.jsonl), token files (*.bin), each plain or gzip/zstd
  // compressed (token files plain); empty = the Brown corpus.
  std::vector<std::filesystem::path> inputs;
  // Files or folders whose documents all go to the validation split (then `inputs` are all
  // training data and val_fraction is not used).
  std::vector<std::filesystem::path> validation_inputs;
  std::filesystem::path brown_dir;  // empty = default_brown_dir()
  // Empty = data/brown for the Brown corpus; required with inputs (so that a user corpus
  // never replaces the default corpus' folder by accident).
  std::filesystem::path out_dir;
  int vocab_size = 0;                // 0 = 4096 (text); required for token files
  std::filesystem::path tokenizer;   // reuse this SentencePiece model (no training)
  std::string jsonl_field = "text";  // JSONL: the field holding the text
  std::int64_t eot_id = -1;          // token files: the id that separates documents
  double val_fraction = 0.05;
  std::uint64_t seed = 1;
  std::uint64_t shard_tokens = 64'000'000;            // tokens per shard file, at most
  std::uint64_t tokenizer_sample_bytes = 64'000'000;  // text the tokenizer trains on, at most
  int threads = 0;                                    // encoding threads; 0 = all cores
  ProgressMode progress = ProgressMode::automatic;
};

struct SplitSummary {
  std::uint64_t documents = 0;
  std::uint64_t bytes = 0;   // UTF-8 bytes of text (0 for token files)
  std::uint64_t tokens = 0;  // including one EOS per document (text)
  std::vector<std::filesystem::path> shards;
};

struct PrepareSummary {
  std::string corpus;  // description of the input
  std::uint64_t documents = 0;
  std::uint64_t skipped_empty = 0;  // empty input files or JSONL texts, not counted
  SplitSummary train, validation;
  int vocab_size = 0;
  bool token_input = false;  // the corpus was token files (no text, no EOS added)
  bool resumed = false;      // an interrupted run was continued
  std::uint64_t resumed_shards = 0;
  std::string tokenizer_source;                     // "trained", "reused <path>" or "none"
  std::filesystem::path tokenizer_path, meta_path;  // tokenizer_path empty without one
  double seconds = 0, read_seconds = 0, tokenizer_seconds = 0, encode_seconds = 0;
  std::uint64_t input_bytes = 0;  // on-disk bytes read while encoding

  std::uint64_t bytes() const { return train.bytes + validation.bytes; }
  std::uint64_t tokens() const { return train.tokens + validation.tokens; }
  // Text bytes per text token (EOS tokens excluded); 0 for token input.
  double bytes_per_token() const;
};

PrepareSummary prepare_data(const PrepareOptions& options);

// The multi-line report `difftx data prepare` prints at the end.
std::string format_summary(const PrepareSummary& summary);

}  // namespace difftx::data
