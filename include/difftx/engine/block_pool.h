// BlockPool: the host-side bookkeeping of the paged KV cache's fixed-size blocks. Hands out
// block ids from a free list (most recently freed first, so hot blocks are reused) and takes
// them back; every id is either free or owned by exactly one sequence.
#pragma once

#include <cstdint>
#include <vector>

namespace difftx::engine {

class BlockPool {
 public:
  explicit BlockPool(std::int64_t num_blocks);

  std::int64_t total() const { return static_cast<std::int64_t>(owned_.size()); }
  std::int64_t free() const { return static_cast<std::int64_t>(free_.size()); }
  std::int64_t used() const { return total() - free(); }

  // One free block id; throws difftx::Error when none is left (callers check free() first).
  std::int32_t allocate();
  // Returns every id of `blocks` to the pool and clears it; throws on an id that is not in use.
  void release(std::vector<std::int32_t>& blocks);
  bool in_use(std::int32_t block) const;

 private:
  std::vector<std::int32_t> free_;  // stack of free ids
  std::vector<char> owned_;         // (num_blocks) 1 while handed out
};

}  // namespace difftx::engine
