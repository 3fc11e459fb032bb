// Host-side launch arithmetic shared by the CUDA op and attention launchers: grid sizes for
// grid-stride loops and pointer alignment tests (which pick vectorised kernel variants).
#pragma once

#include <cstdint>

namespace difftx::cuda {

// Blocks for a grid-stride loop over n items, `per_block` items per block per sweep; at least
// one block, at most max_blocks.
inline unsigned grid_blocks(std::int64_t n, std::int64_t per_block,
                            std::int64_t max_blocks = 65535 * 8) {
  std::int64_t b = (n + per_block - 1) / per_block;
  if (b < 1) b = 1;
  if (b > max_blocks) b = max_blocks;
  return static_cast<unsigned>(b);
}

// Whether p is 16-byte aligned (one 16-byte load or store reaches it).
inline bool aligned16(const void* p) {
  return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0;
}

}  // namespace difftx::cuda
