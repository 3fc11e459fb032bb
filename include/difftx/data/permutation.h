// A seeded pseudo-random permutation of [0, n) evaluated index by index in O(1) memory:
// a 4-round Feistel network on the smallest even bit width covering n, with cycle walking.
#pragma once

#include <cstdint>

#include "difftx/data/random.h"

namespace difftx::data {

class IndexPermutation {
 public:
  IndexPermutation() = default;
  IndexPermutation(std::uint64_t n, std::uint64_t key) : n_(n) {
    int bits = 2;
    while (bits < 64 && (std::uint64_t{1} << bits) < n) bits += 2;
    half_ = bits / 2;
    mask_ = (std::uint64_t{1} << half_) - 1;
    for (int r = 0; r < kRounds; ++r) keys_[r] = mix64(key + 0x632be59bd9b4e019ULL * (r + 1));
  }

  std::uint64_t size() const { return n_; }

  // The image of i (i < size()); distinct i give distinct results in [0, size()).
  std::uint64_t operator()(std::uint64_t i) const {
    do {
      i = encrypt(i);
    } while (i >= n_);
    return i;
  }

 private:
  static constexpr int kRounds = 4;

  std::uint64_t encrypt(std::uint64_t x) const {
    std::uint64_t left = x >> half_, right = x & mask_;
    for (int r = 0; r < kRounds; ++r) {
      const std::uint64_t next = left ^ (mix64(right ^ keys_[r]) & mask_);
      left = right;
      right = next;
    }
    return (left << half_) | right;
  }

  std::uint64_t n_ = 0;
  int half_ = 1;
  std::uint64_t mask_ = 1;
  std::uint64_t keys_[kRounds] = {};
};

}  // namespace difftx::data
