// The resumable staging of `data prepare`: <out>/.prepare-partial holds the finished shards, the
// tokenizer and state.json (for each split: its finished shards and the stream position of the
// next shard's first token), written after every shard, so a run that was interrupted (Ctrl-C,
// kill, power loss) continues from its last finished shard with nothing lost or duplicated.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace difftx::data {

inline constexpr const char* kPartialDir = ".prepare-partial";

// A place in the ordered input stream: an item (a piece of a document cut at a space or a
// newline, an end-of-document token, or a run of ids of a token file) and how many of its
// tokens were already written.
struct StreamPosition {
  std::uint64_t file = 0;    // corpus file index
  std::uint64_t doc = 0;     // 0 for a text or token file, the line number for JSONL
  std::uint64_t offset = 0;  // byte (text) or token (token file) offset of the item
  std::uint64_t skip = 0;    // tokens of the item already in finished shards

  nlohmann::json to_json() const;
  static StreamPosition from_json(const nlohmann::json& j);
};

// Whether item a comes before item b in the stream (skip is ignored).
bool item_before(const StreamPosition& a, const StreamPosition& b);
bool same_item(const StreamPosition& a, const StreamPosition& b);

// One split's output up to a shard boundary.
struct SplitProgress {
  std::vector<nlohmann::json> shards;  // meta.json entries of the finished shards
  StreamPosition next;                 // where the first token of the next shard comes from
  std::uint64_t documents = 0, bytes = 0, tokens = 0;  // in the finished shards
  std::uint64_t skipped = 0;                           // empty documents before `next`

  nlohmann::json to_json() const;
  static SplitProgress from_json(const nlohmann::json& j);
};

class PrepareStaging {
 public:
  // Opens <out>/.prepare-partial (creating `out` if needed), locked against a second run. A
  // state written for the same `key` (options and inputs) is resumed; anything else there is
  // cleared. Throws if `out` cannot be written or another run holds the lock.
  PrepareStaging(const std::filesystem::path& out, const std::string& key);
  PrepareStaging(const PrepareStaging&) = delete;
  PrepareStaging& operator=(const PrepareStaging&) = delete;
  // Unless committed: removes the staging folder (a failed run leaves `out` as it was, and
  // removes `out` if this run created it and it is empty).
  ~PrepareStaging();

  const std::filesystem::path& dir() const { return dir_; }
  bool resumed() const { return resumed_; }
  // Why an existing staging folder was not resumed, or empty.
  const std::string& note() const { return note_; }
  // The resumed state: its tokenizer fingerprint and each split's progress.
  const std::string& tokenizer_fingerprint() const { return tokenizer_fp_; }
  SplitProgress progress(const std::string& split) const;

  // Records the state (atomically).
  void save(const std::string& tokenizer_fp, const SplitProgress& train,
            const SplitProgress& validation);
  // Removes the previous data set of `out` (meta.json first, then its shards, tokenizer and the
  // extra files its meta.json lists under "files"), moves `files` (files or folders of the
  // staging folder) in and meta.json last, makes the renames durable and removes the staging
  // folder.
  void commit(const std::vector<std::string>& files);

 private:
  std::filesystem::path out_, dir_;
  std::string key_;
  int lock_fd_ = -1;
  bool created_out_ = false, committed_ = false, resumed_ = false;
  std::string note_, tokenizer_fp_;
  nlohmann::json state_;
};

}  // namespace difftx::data
