// Guard buffers for the op harness (see guarded.h).
#include "guarded.h"

#include <cmath>
#include <vector>

namespace difftx::testing {

GuardedTensor::GuardedTensor(Backend& b, const Shape& shape, DType dtype, std::int64_t offset)
    : offset_(offset), numel_(shape_numel(shape)) {
  buffer_ = Tensor::empty({offset + numel_ + kTailGuard}, dtype, b.device());
  b.fill(buffer_, kSentinel);
  view_ = buffer_.rows(offset, offset + numel_).reshape(shape);
  b.fill(view_, dtype == DType::i32 ? -7.0 : std::nan(""));
}

std::int64_t GuardedTensor::damaged_guards() const {
  // the sentinel as the buffer's dtype stores it
  Tensor one = Tensor::from_vector({1}, {static_cast<float>(kSentinel)}, buffer_.dtype());
  const double sentinel = one.to_double_vector()[0];
  const std::vector<double> all = buffer_.to_double_vector();
  std::int64_t damaged = 0;
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(all.size()); ++i) {
    const bool guard = i < offset_ || i >= offset_ + numel_;
    if (guard && all[static_cast<std::size_t>(i)] != sentinel) ++damaged;
  }
  return damaged;
}

}  // namespace difftx::testing
