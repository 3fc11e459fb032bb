// Where each parameter lives in the flat buffers of data parallelism. Parameters are laid out in
// the order the backward completes their gradients (gradients_ready_order(config), model.h) and
// packed into buckets: one collective per bucket, launched as soon as its last gradient is final.
// ZeRO-1 splits every bucket into `shards` equal chunks; rank r owns chunk r of each bucket
// (its moments, its reduced gradient, the update of its master weights). Chunks are padded to
// a multiple of kAlign elements so every chunk starts 256-byte aligned; padding stays zero.
//
// Two coordinate systems:
//   flat  : the whole model, (total()) elements: parameters, gradients;
//   shard : one rank's chunks of every bucket concatenated, (shard_size()) elements: AdamW
//           moments and the reduce-scattered gradient. With shards = 1 (plain all-reduce) the
//           shard is the whole flat buffer and both coordinates agree.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "difftx/core/tensor.h"
#include "difftx/model/params.h"

namespace difftx::dist {

inline constexpr std::int64_t kAlign = 64;  // elements per chunk granule (256 B in f32)

struct FlatBucket {
  std::int64_t offset = 0;          // flat
  std::int64_t size = 0;            // elements, a multiple of shards * kAlign
  std::int64_t shard_offset = 0;    // where this bucket's chunk starts in a shard
  std::vector<std::size_t> params;  // parameter indices, in flat order
};

// A piece of one parameter inside one rank's chunk of one bucket.
struct FlatSegment {
  std::size_t param = 0;          // index into the ParamSet
  std::int64_t param_offset = 0;  // first element within the parameter
  std::int64_t flat_offset = 0;
  std::int64_t shard_offset = 0;
  std::int64_t numel = 0;
};

class FlatLayout {
 public:
  // numels[i]: element count of parameter i; ready_order: groups of parameter indices in the
  // order their gradients complete (every index exactly once). A bucket closes once it holds at
  // least bucket_elements; a parameter never spans two buckets.
  FlatLayout(const std::vector<std::int64_t>& numels,
             const std::vector<std::vector<std::size_t>>& ready_order, std::int64_t bucket_elements,
             int shards);

  int shards() const { return shards_; }
  std::int64_t total() const { return total_; }
  std::int64_t shard_size() const { return total_ / shards_; }
  std::int64_t chunk(std::size_t bucket) const { return buckets_[bucket].size / shards_; }
  const std::vector<FlatBucket>& buckets() const { return buckets_; }
  std::int64_t offset(std::size_t param) const { return offsets_[param]; }
  std::int64_t numel(std::size_t param) const { return numels_[param]; }
  std::size_t bucket_of(std::size_t param) const { return bucket_of_[param]; }
  std::size_t params() const { return numels_.size(); }

  // The parameter pieces in shard `shard`, in shard order.
  std::vector<FlatSegment> segments(int shard) const;

  // Named views of `flat` ((total()) elements) shaped like `specs` (specs[i] is parameter i).
  ParamSet views(const Tensor& flat, const std::vector<ParamSpec>& specs) const;

 private:
  int shards_;
  std::int64_t total_ = 0;
  std::vector<std::int64_t> numels_, offsets_;
  std::vector<std::size_t> bucket_of_;
  std::vector<FlatBucket> buckets_;
};

}  // namespace difftx::dist
