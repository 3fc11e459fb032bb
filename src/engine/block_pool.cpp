// The paged KV cache's block free list (see block_pool.h).
#include "difftx/engine/block_pool.h"

#include <limits>

#include "difftx/core/error.h"

namespace difftx::engine {

BlockPool::BlockPool(std::int64_t num_blocks) {
  DIFFTX_CHECK(num_blocks >= 1 && num_blocks <= std::numeric_limits<std::int32_t>::max(),
               "KV block pool: {} blocks is out of range", num_blocks);
  owned_.assign(static_cast<std::size_t>(num_blocks), 0);
  free_.reserve(owned_.size());
  // Lowest ids on top of the stack: a fresh pool hands out 0, 1, 2, ...
  for (std::int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(static_cast<std::int32_t>(b));
}

std::int32_t BlockPool::allocate() {
  DIFFTX_CHECK(!free_.empty(), "KV block pool: no free block (all {} in use)", total());
  const std::int32_t b = free_.back();
  free_.pop_back();
  owned_[static_cast<std::size_t>(b)] = 1;
  return b;
}

void BlockPool::release(std::vector<std::int32_t>& blocks) {
  for (std::int32_t b : blocks) {
    DIFFTX_CHECK(in_use(b), "KV block pool: block {} released but not in use", b);
    owned_[static_cast<std::size_t>(b)] = 0;
    free_.push_back(b);
  }
  blocks.clear();
}

bool BlockPool::in_use(std::int32_t block) const {
  return block >= 0 && block < total() && owned_[static_cast<std::size_t>(block)] != 0;
}

}  // namespace difftx::engine
