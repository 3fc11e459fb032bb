// Data set descriptions for planning and evaluating a study (see dataset.h).
#include "difftx/study/dataset.h"

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/data/data_folder.h"
#include "difftx/data/loader.h"

namespace difftx::study {
namespace fs = std::filesystem;
using nlohmann::json;

int DatasetInfo::seq_len_for(const std::string& prefix, int stream_seq_len) const {
  const auto it = splits.find(prefix);
  if (it == splits.end() || it->second.record_tokens == 0) return stream_seq_len;
  return static_cast<int>(it->second.record_tokens) - 1;
}

DatasetInfo read_dataset_info(const fs::path& dir, const std::string& dataset) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    fail(
        "data set \"{}\": '{}' is not a data folder: prepare it (`difftx data prepare --out {}` "
        "or `difftx data synth ... --out {}`) or fix its path in the spec",
        dataset, dir.string(), dir.string(), dir.string());
  }
  const data::DataFolderInfo folder = data::check_data_folder(dir);
  DatasetInfo info;
  info.dir = dir;
  info.vocab_size = folder.vocab_size;
  for (const auto& split : data::kSplits) {
    const auto it = folder.shards.find(split.prefix);
    if (it == folder.shards.end() || it->second.empty()) continue;
    const data::ShardSet set(it->second, /*verify=*/false);
    SplitInfo s;
    s.record_tokens = set.record_tokens();
    s.label_mask = set.has_label_mask();
    s.tokens = set.total_tokens();
    info.splits[split.prefix] = s;
  }
  if (!info.has_split("train") || !info.has_split("val")) {
    fail(
        "data set \"{}\": '{}' needs a train and a validation split (train-*.tokens, "
        "val-*.tokens)",
        dataset, dir.string());
  }
  const fs::path meta = dir / data::kMetaFile;
  if (fs::exists(meta, ec)) {
    try {
      const json j = json::parse(read_file_text(meta));
      if (j.contains("task")) info.task = j.at("task");
    } catch (const json::parse_error& e) {
      fail("data set \"{}\": {} is not valid JSON ({}): prepare the folder again", dataset,
           meta.string(), e.what());
    }
  }
  return info;
}

fs::path dataset_dir(const DatasetSpec& dataset, const fs::path& out) {
  return dataset.synth ? out / "data" / dataset.slug : dataset.path;
}

}  // namespace difftx::study
