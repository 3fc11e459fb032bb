// A data folder checked as a whole before anything trains on it: the tokenizer loads and
// matches the shards' vocabulary, every shard listed in meta.json is present (a regular file,
// of the listed size and checksum) and no other shard is, all splits share one vocabulary.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "difftx/data/shard.h"

namespace difftx::data {

inline constexpr const char* kTokenizerFile = "tokenizer.model";
inline constexpr const char* kMetaFile = "meta.json";
inline constexpr const char* kMetaFormat = "difftx-token-shards";
inline constexpr int kMetaVersion = 2;

// A split: its key in meta.json and the prefix of its shard files (<prefix>-NNNNN.tokens).
struct SplitName {
  const char* key;
  const char* prefix;
};
inline constexpr SplitName kSplits[] = {
    {"train", "train"}, {"validation", "val"}, {"test", "test"}};

// "train-00003.tokens".
std::string shard_file_name(const std::string& prefix, std::size_t index);

// meta.json's entry for one shard: {"file", "tokens", "documents", "checksum"}.
nlohmann::json shard_entry_json(const std::string& file, const ShardHeader& header);

struct DataFolderInfo {
  std::filesystem::path dir;
  bool has_meta = false;
  bool has_tokenizer = false;
  std::uint32_t vocab_size = 0;  // of the shards (and the tokenizer, when there is one)
  std::map<std::string, std::vector<std::filesystem::path>> shards;  // by file prefix, sorted
};

// Checks `dir` as a whole without reading shard payloads (the loaders verify the payloads
// of the splits they open). A folder without meta.json (shards written by hand or by tests) is
// checked for what it has: shard entries must be regular files of one vocabulary, and a
// tokenizer.model, if present, must load and match it. Throws difftx::Error with one message
// naming the file and the fix.
DataFolderInfo check_data_folder(const std::filesystem::path& dir);

// The shard files of split `prefix` in a checked folder; throws if there are none.
std::vector<std::filesystem::path> split_shards(const DataFolderInfo& info,
                                                const std::string& prefix);

}  // namespace difftx::data
