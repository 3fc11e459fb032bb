// One split's token stream cut into shards of exactly `shard_tokens` tokens (the last one
// smaller) in the staging folder, resumable at any shard boundary: every time a shard begins,
// the position of its first token in the input stream is reported (and saved by the caller).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "difftx/data/prepare_state.h"
#include "difftx/data/shard.h"

namespace difftx::data {

class SplitSink {
 public:
  // `resume` is the progress of an interrupted run (empty for a fresh one); `on_shard_start`
  // is called when a shard receives its first token, after progress() describes that boundary.
  SplitSink(std::string prefix, std::filesystem::path dir, std::uint32_t vocab_size,
            std::uint64_t shard_tokens, SplitProgress resume, std::function<void()> on_shard_start);
  SplitSink(const SplitSink&) = delete;
  SplitSink& operator=(const SplitSink&) = delete;
  ~SplitSink();

  // How many of the tokens of the item at `item` are already written (0 for items after the
  // resume point); items before it are not wanted at all (returns false).
  bool wants(const StreamPosition& item, std::uint64_t* skip) const;
  // Appends the item's ids from `skip` on. `text_bytes` is counted once the item is complete;
  // each id equal to `document_id` counts one document (EOS for text; -1 = none).
  void append(const StreamPosition& item, std::span<const std::int32_t> ids, std::uint64_t skip,
              std::uint64_t text_bytes, std::int64_t document_id);
  // Counts an empty document (skipped, no tokens) found at `at`, unless it precedes the resume
  // point (then it was counted before).
  void count_empty(const StreamPosition& at);
  // Writes the last, partly filled shard.
  void finish();

  // The state at the last shard boundary (what a resumed run starts from).
  const SplitProgress& progress() const { return boundary_; }
  // Totals so far.
  std::uint64_t tokens() const { return tokens_; }
  std::uint64_t documents() const { return documents_; }
  std::uint64_t bytes() const { return bytes_; }
  std::uint64_t skipped() const { return skipped_; }
  const std::vector<nlohmann::json>& shards() const { return boundary_.shards; }
  std::vector<std::string> files() const;

 private:
  void close_shard();

  std::string prefix_;
  std::filesystem::path dir_;
  std::uint32_t vocab_;
  std::uint64_t limit_;
  StreamPosition resume_;
  std::function<void()> on_shard_start_;
  SplitProgress boundary_;
  std::unique_ptr<ShardWriter> writer_;
  std::uint64_t writer_documents_ = 0;
  std::uint64_t tokens_ = 0, documents_ = 0, bytes_ = 0, skipped_ = 0;
};

}  // namespace difftx::data
