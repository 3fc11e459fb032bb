// A study's data sets as the runs see them: the folder, its vocabulary, each split's layout
// (record length of task data, label mask) and meta.json's "task" description (MQAR: pairs and
// sequence length per split, the difficulty axes of the report).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "difftx/study/spec.h"

namespace difftx::study {

struct SplitInfo {
  std::uint32_t record_tokens = 0;  // 0: a token stream; R: examples of R tokens
  bool label_mask = false;
  std::uint64_t tokens = 0;
};

struct DatasetInfo {
  std::filesystem::path dir;
  std::uint32_t vocab_size = 0;
  std::map<std::string, SplitInfo> splits;  // by file prefix: "train", "val", "test"
  nlohmann::json task;                      // meta.json "task", or null

  bool has_split(const std::string& prefix) const { return splits.count(prefix) > 0; }
  // The seq_len a loader of this split needs: R - 1 for record data, else `stream_seq_len`.
  int seq_len_for(const std::string& prefix, int stream_seq_len) const;
};

// Reads a prepared data folder (checked as a whole: data::check_data_folder) without reading
// shard payloads. Throws naming the folder and the data set when it is unusable.
DatasetInfo read_dataset_info(const std::filesystem::path& dir, const std::string& dataset);

// Where the study keeps a data set: its own path, or <out>/data/<slug> for a synth recipe.
std::filesystem::path dataset_dir(const DatasetSpec& dataset, const std::filesystem::path& out);

}  // namespace difftx::study
