// Writing a task data folder (`difftx data synth`): splits of examples or documents into
// shards of the token-shard format (with a label mask where a task marks its targets), the
// tokenizer, task files and meta.json; staged and moved into place at the end, like `data
// prepare`, so the folder is a complete data folder for the trainer and the folder checks.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "difftx/data/prepare_state.h"
#include "difftx/data/shard.h"
#include "difftx/data/tokenizer.h"

namespace difftx::data {

// One split: examples (or documents) appended whole, never cut across shards.
class SynthSplit {
 public:
  SynthSplit(std::filesystem::path dir, std::string prefix, std::uint32_t vocab_size,
             ShardLayout layout, std::uint64_t shard_tokens);
  SynthSplit(const SynthSplit&) = delete;
  SynthSplit& operator=(const SynthSplit&) = delete;
  ~SynthSplit();

  // Appends one example (record data: exactly record_tokens ids) or document; `labels` (0/1
  // per id) is required with a label mask and must be empty without one.
  void add(std::span<const std::int32_t> ids, std::span<const std::uint8_t> labels = {});
  void finish();

  std::uint64_t examples() const { return examples_; }
  std::uint64_t tokens() const { return tokens_; }
  std::uint64_t labelled() const { return labelled_; }
  const std::vector<nlohmann::json>& shards() const { return shards_; }
  std::vector<std::string> files() const;
  nlohmann::json summary_json() const;

 private:
  void close();

  std::filesystem::path dir_;
  std::string prefix_;
  std::uint32_t vocab_;
  ShardLayout layout_;
  std::uint64_t limit_;
  std::unique_ptr<ShardWriter> writer_;
  std::uint64_t writer_examples_ = 0;
  std::uint64_t examples_ = 0, tokens_ = 0, labelled_ = 0;
  std::vector<nlohmann::json> shards_;
};

class SynthFolder {
 public:
  // `key` identifies the generation (kind, options, seed): see PrepareStaging.
  SynthFolder(const std::filesystem::path& out, const std::string& key);

  const std::filesystem::path& dir() const { return staging_.dir(); }
  // A split written into the staging folder: meta key "train", "validation" or "test".
  SynthSplit& split(const std::string& key, std::uint32_t vocab_size, ShardLayout layout,
                    std::uint64_t shard_tokens = 64'000'000);
  // A task file (path relative to the folder, e.g. "needles.json" or "icl/task.json").
  void add_file(const std::string& name, std::string_view contents);

  // Saves the tokenizer, writes meta.json (`task` plus the format, the tokenizer and the
  // splits) and moves everything into the output folder.
  void commit(const Tokenizer& tokenizer, const std::string& tokenizer_source,
              const nlohmann::json& task);

 private:
  std::filesystem::path out_;
  PrepareStaging staging_;
  std::map<std::string, std::unique_ptr<SynthSplit>> splits_;
  std::vector<std::string> extra_;  // top-level names of the task files
};

}  // namespace difftx::data
