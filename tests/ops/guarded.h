// Guard buffers for the op harness: a tensor placed `offset` elements into a larger buffer on a
// backend's device, the elements before and after it holding a sentinel. An op that writes past
// either end of its tensor changes a sentinel; damaged_guards() counts them. Works on every
// backend (the buffer is filled with the backend's own fill op).
#pragma once

#include <cstdint>

#include "difftx/model/backend.h"

namespace difftx::testing {

// The value guard elements hold (rounded to the buffer's dtype), and the number of guard
// elements after a tensor (odd, so vectorised writes that overrun by a pack show).
constexpr double kSentinel = 1234.5;
constexpr std::int64_t kTailGuard = 67;

class GuardedTensor {
 public:
  // A tensor of `shape` and `dtype` on b, `offset` elements into its buffer, poisoned: NaN for
  // floating dtypes, -7 for i32.
  GuardedTensor(Backend& b, const Shape& shape, DType dtype, std::int64_t offset);

  Tensor& view() { return view_; }
  const Tensor& view() const { return view_; }
  // Guard elements that no longer hold the sentinel.
  std::int64_t damaged_guards() const;

 private:
  Tensor buffer_, view_;
  std::int64_t offset_, numel_;
};

}  // namespace difftx::testing
