// Batch loaders over memory-mapped token shards: a shuffled, resumable training loader that
// can act as rank r of n, and a sequential evaluation loader that covers every target once.
// Task data (label masks, fixed-length examples) is honoured by both: see Batch::labels().
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "difftx/data/shard.h"

namespace difftx::data {

// B windows of T + 1 tokens: inputs are tokens [0, T) of a row, targets tokens [1, T + 1).
struct Batch {
  int batch_size = 0;                // B
  int seq_len = 0;                   // T
  int rows = 0;                      // rows holding data (B except at the end of evaluation)
  std::vector<std::int32_t> tokens;  // (B, T + 1); padding rows and tails hold kPadId
  // (B, T): 1 where target (b, t) counts: padding and already-counted targets of evaluation
  // are 0, and so are unlabelled targets of task data (shards with a label mask); else 1.
  std::vector<std::uint8_t> mask;

  std::int32_t input(int b, int t) const { return tokens[index(b, t)]; }
  std::int32_t target(int b, int t) const { return tokens[index(b, t) + 1]; }
  std::vector<std::int32_t> inputs() const;   // (B, T)
  std::vector<std::int32_t> targets() const;  // (B, T), every target whatever the mask
  // (B, T): the targets where mask is 1 and -1 elsewhere, the form Model's losses take
  // (targets < 0 are ignored): train and evaluate on labels(), not targets().
  std::vector<std::int32_t> labels() const;
  std::uint64_t counted_targets() const;  // number of 1s in mask

 private:
  std::size_t index(int b, int t) const {
    return static_cast<std::size_t>(b) * static_cast<std::size_t>(seq_len + 1) +
           static_cast<std::size_t>(t);
  }
};

struct LoaderOptions {
  std::filesystem::path path;  // a shard file, or a folder holding <split>-NNNNN.tokens
  std::string split = "train";
  int seq_len = 256;   // T
  int batch_size = 8;  // B, per rank
  std::uint64_t seed = 0;
  int rank = 0;
  int world = 1;
  bool verify = true;  // check every shard's payload checksum and ids when opening
};

// The shard files `path` stands for: itself if it is a regular file, else
// <path>/<split>-*.tokens in name order, after the folder was checked as a whole
// (check_data_folder: tokenizer, meta.json and every split). Throws if there are none.
std::vector<std::filesystem::path> find_shards(const std::filesystem::path& path,
                                               const std::string& split);

// A set of opened shards with the same vocabulary and the same record length.
class ShardSet {
 public:
  ShardSet(const std::vector<std::filesystem::path>& paths, bool verify);
  const std::vector<ShardReader>& shards() const { return shards_; }
  std::uint64_t total_tokens() const { return total_tokens_; }
  std::uint32_t vocab_size() const { return vocab_size_; }
  // 0 for token streams; R for task data of independent R-token examples (seq_len = R - 1).
  std::uint32_t record_tokens() const { return record_tokens_; }
  bool has_label_mask() const { return has_label_mask_; }  // some shard marks its targets
  // XXH3-64 over (vocabulary, each shard's token count and payload checksum), as hex.
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  std::vector<ShardReader> shards_;
  std::uint64_t total_tokens_ = 0;
  std::uint32_t vocab_size_ = 0;
  std::uint32_t record_tokens_ = 0;
  bool has_label_mask_ = false;
  std::string fingerprint_;
};

// Where a training loader is: restoring it continues with exactly the batches that followed.
// The position is global (the same on every rank), so any rank's state restores every rank.
struct LoaderState {
  std::uint64_t seed = 0;
  std::uint64_t epoch = 0;
  std::uint64_t step = 0;  // batches already drawn in this epoch (per rank)
  int seq_len = 0;
  int batch_size = 0;
  int world = 1;
  std::string dataset;  // ShardSet::fingerprint()

  nlohmann::json to_json() const;
  static LoaderState from_json(const nlohmann::json& j);
};

// Training batches. Each epoch cuts every shard into windows of T + 1 tokens at starts
// offset + k * T (the offset in [0, T) is drawn from the seed and the epoch, so window
// boundaries move between epochs), shuffles all windows with a seeded permutation, and hands
// step s's windows [(s * world + rank) * B, ... + B) to this rank. Leftover windows (fewer
// than B * world) are skipped; the next epoch starts with a new offset and permutation.
// Record data (examples of R tokens) needs seq_len = R - 1: each example is one window.
class TrainLoader {
 public:
  explicit TrainLoader(const LoaderOptions& options);

  Batch next_batch();
  void next_batch(Batch& out);  // reuses out's buffers

  LoaderState state() const;
  // Throws if the state is for a different dataset, seq_len, batch size or world size.
  void restore(const LoaderState& state);

  std::uint64_t epoch() const { return epoch_; }
  std::uint64_t step() const { return step_; }
  std::uint64_t windows_in_epoch() const { return prefix_.back(); }
  std::uint64_t steps_in_epoch() const;
  const ShardSet& shards() const { return set_; }
  const LoaderOptions& options() const { return options_; }

 private:
  void layout_epoch();
  std::uint64_t window_start(std::uint64_t global, std::size_t* shard) const;

  LoaderOptions options_;
  ShardSet set_;
  std::uint64_t epoch_ = 0;
  std::uint64_t step_ = 0;
  std::uint64_t offset_ = 0;           // window start offset of the current epoch
  std::vector<std::uint64_t> prefix_;  // prefix sums of windows per shard (size shards + 1)
  std::uint64_t perm_key_ = 0;
};

// Evaluation batches: every shard cut at 0, T, 2T, ...; a shard's remainder is covered by one
// last window ending at its last token whose already-seen targets are masked out, so every
// target (each token after a shard's first) is counted exactly once over all ranks. Window j
// goes to rank j % world; every rank gets the same number of batches (padding rows masked).
// Record data: each example is one window (seq_len = R - 1). With a label mask, only labelled
// targets count.
class EvalLoader {
 public:
  explicit EvalLoader(const LoaderOptions& options);

  // Fills `out` with the next batch; false when all batches were returned.
  bool next(Batch& out);
  void reset() { next_batch_ = 0; }

  std::uint64_t num_batches() const { return num_batches_; }
  std::uint64_t num_windows() const { return windows_.size(); }
  // Targets counted over all ranks together: sum over shards of (tokens - 1) for streams,
  // R - 1 per example for records; with a label mask only the labelled ones.
  std::uint64_t total_targets() const;
  const ShardSet& shards() const { return set_; }

 private:
  struct Window {
    std::uint32_t shard;
    std::uint64_t start;
    std::uint32_t length;     // tokens present (T + 1 unless the shard is shorter)
    std::uint32_t mask_from;  // targets before this one were counted by an earlier window
  };
  LoaderOptions options_;
  ShardSet set_;
  std::vector<Window> windows_;
  std::uint64_t num_batches_ = 0;
  std::uint64_t next_batch_ = 0;
};

}  // namespace difftx::data
