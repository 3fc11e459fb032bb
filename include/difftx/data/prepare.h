// `difftx data prepare`: corpus -> checks -> split -> tokenizer -> token shards + meta.json,
// all-or-nothing (files are staged and moved into the output folder only at the end).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "difftx/core/progress.h"
#include "difftx/data/data_folder.h"

namespace difftx::data {

struct PrepareOptions {
  std::vector<std::filesystem::path> inputs;  // text files/folders; empty = the Brown corpus
  std::filesystem::path brown_dir;            // empty = default_brown_dir()
  std::filesystem::path out_dir = "data/brown";
  int vocab_size = 4096;
  double val_fraction = 0.05;
  std::uint64_t seed = 1;
  std::uint64_t shard_tokens = 64'000'000;   // tokens per shard file (last one smaller)
  std::uint64_t tokenizer_sample_bytes = 64'000'000;  // text the tokenizer trains on, at most
  int threads = 0;                           // encoding threads; 0 = all cores
  ProgressMode progress = ProgressMode::automatic;
};

struct SplitSummary {
  std::uint64_t documents = 0;
  std::uint64_t bytes = 0;   // UTF-8 bytes of text
  std::uint64_t tokens = 0;  // including one EOS per document
  std::vector<std::filesystem::path> shards;
};

struct PrepareSummary {
  std::string corpus;  // description of the input
  std::uint64_t documents = 0;
  std::uint64_t skipped_empty = 0;  // empty input files, not counted as documents
  SplitSummary train, validation;
  int vocab_size = 0;
  std::filesystem::path tokenizer_path, meta_path;
  double seconds = 0, read_seconds = 0, tokenizer_seconds = 0, encode_seconds = 0;

  std::uint64_t bytes() const { return train.bytes + validation.bytes; }
  std::uint64_t tokens() const { return train.tokens + validation.tokens; }
  // Text bytes per text token (EOS tokens excluded).
  double bytes_per_token() const;
};

PrepareSummary prepare_data(const PrepareOptions& options);

// The multi-line report `difftx data prepare` prints at the end.
std::string format_summary(const PrepareSummary& summary);

}  // namespace difftx::data
