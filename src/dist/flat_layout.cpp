// Packing parameters into padded buckets and cutting the buckets into rank shards.
#include "difftx/dist/flat_layout.h"

#include <algorithm>

#include "difftx/core/error.h"

namespace difftx::dist {

FlatLayout::FlatLayout(const std::vector<std::int64_t>& numels,
                       const std::vector<std::vector<std::size_t>>& ready_order,
                       std::int64_t bucket_elements, int shards)
    : shards_(shards), numels_(numels), offsets_(numels.size(), -1), bucket_of_(numels.size(), 0) {
  DIFFTX_CHECK(shards >= 1, "flat layout: {} shards", shards);
  DIFFTX_CHECK(bucket_elements >= 1, "flat layout: buckets of {} elements", bucket_elements);
  const std::int64_t granule = kAlign * shards;
  FlatBucket open;
  auto close = [&] {
    if (open.params.empty()) return;
    open.size = (open.size + granule - 1) / granule * granule;
    open.shard_offset = total_ / shards;
    total_ += open.size;
    buckets_.push_back(std::move(open));
    open = FlatBucket();
    open.offset = total_;
  };
  std::size_t placed = 0;
  for (const auto& group : ready_order) {
    for (std::size_t p : group) {
      DIFFTX_CHECK(p < numels.size() && offsets_[p] < 0,
                   "flat layout: parameter {} is missing from or repeated in the ready order", p);
      DIFFTX_CHECK(numels[p] > 0, "flat layout: parameter {} is empty", p);
      offsets_[p] = open.offset + open.size;
      bucket_of_[p] = buckets_.size();
      open.size += numels[p];
      open.params.push_back(p);
      ++placed;
      if (open.size >= bucket_elements) close();
    }
  }
  close();
  DIFFTX_CHECK(placed == numels.size(), "flat layout: the ready order holds {} of {} parameters",
               placed, numels.size());
}

std::vector<FlatSegment> FlatLayout::segments(int shard) const {
  DIFFTX_CHECK(shard >= 0 && shard < shards_, "flat layout: shard {} of {}", shard, shards_);
  std::vector<FlatSegment> out;
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    const FlatBucket& bucket = buckets_[b];
    const std::int64_t lo = bucket.offset + shard * chunk(b), hi = lo + chunk(b);
    for (std::size_t p : bucket.params) {
      const std::int64_t begin = std::max(lo, offsets_[p]);
      const std::int64_t end = std::min(hi, offsets_[p] + numels_[p]);
      if (begin >= end) continue;
      out.push_back(
          {p, begin - offsets_[p], begin, bucket.shard_offset + (begin - lo), end - begin});
    }
  }
  return out;
}

ParamSet FlatLayout::views(const Tensor& flat, const std::vector<ParamSpec>& specs) const {
  DIFFTX_CHECK(flat.ndim() == 1 && flat.numel() == total_,
               "flat layout: a buffer of {} for a layout of {} elements", flat.describe(), total_);
  DIFFTX_CHECK(specs.size() == numels_.size(), "flat layout: {} specs for {} parameters",
               specs.size(), numels_.size());
  ParamSet set;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    DIFFTX_CHECK(shape_numel(specs[i].shape) == numels_[i],
                 "flat layout: '{}' has {} elements, the layout {}", specs[i].name,
                 shape_numel(specs[i].shape), numels_[i]);
    set.add(specs[i].name,
            flat.rows(offsets_[i], offsets_[i] + numels_[i]).reshape(specs[i].shape));
  }
  return set;
}

}  // namespace difftx::dist
