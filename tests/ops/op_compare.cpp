// Comparisons of the device suite (see op_compare.h).
#include "op_compare.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>

namespace difftx::testing {

double round_to(DType d, double v) {
  switch (d) {
    case DType::bf16:
      return bf16_to_float(float_to_bf16(static_cast<float>(v)));
    case DType::f32:
      return static_cast<float>(v);
    case DType::i32:
      return static_cast<double>(static_cast<std::int32_t>(v));
    case DType::f64:
      return v;
  }
  return v;
}

double rel_l2(const std::vector<double>& x, const std::vector<double>& r) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    num += (x[i] - r[i]) * (x[i] - r[i]);
    den += r[i] * r[i];
  }
  return std::sqrt(num) / (den > 0 ? std::sqrt(den) : 1.0);
}

std::string budget_failure(const std::string& what, const Tensor& device, const Tensor& ref,
                           const Tensor& naive, double floor, BudgetStats* stats) {
  if (device.numel() != ref.numel() || device.numel() != naive.numel()) {
    return fmt::format("{}: {} elements, reference {}, naive {}", what, device.numel(), ref.numel(),
                       naive.numel());
  }
  const std::vector<double> g = device.to_double_vector();
  const std::vector<double> r = ref.to_double_vector();
  std::vector<double> n = naive.to_double_vector();
  std::int64_t bad = 0, first = -1;
  for (std::size_t i = 0; i < g.size(); ++i) {
    if (!std::isfinite(g[i])) {
      if (first < 0) first = static_cast<std::int64_t>(i);
      ++bad;
    }
  }
  if (bad > 0) {
    return fmt::format("{}: {} non-finite outputs (unwritten or overflowed), first at {}", what,
                       bad, first);
  }
  for (auto& x : n) x = round_to(device.dtype(), x);
  if (floor < 0) floor = device.dtype() == DType::bf16 ? kFloorBf16 : kFloorF32;
  const double e_device = rel_l2(g, r), e_naive = rel_l2(n, r), limit = 2 * e_naive + floor;
  if (stats) *stats = BudgetStats{e_device, e_naive, limit};
  if (e_device <= limit) return {};
  return fmt::format(
      "{}: device rel. L2 error {:.4g} exceeds {:.4g} (naive {} error {:.4g}, floor {})", what,
      e_device, limit, dtype_name(device.dtype()), e_naive, floor);
}

std::string equality_failure(const std::string& what, const Tensor& device,
                             const std::vector<double>& want) {
  const std::vector<double> g = device.to_double_vector();
  if (g.size() != want.size()) {
    return fmt::format("{}: {} elements, expected {}", what, g.size(), want.size());
  }
  std::int64_t bad = 0, first = -1;
  for (std::size_t i = 0; i < g.size(); ++i) {
    const bool same = (std::isnan(g[i]) && std::isnan(want[i])) || g[i] == want[i];
    if (!same) {
      if (first < 0) first = static_cast<std::int64_t>(i);
      ++bad;
    }
  }
  if (bad == 0) return {};
  const auto at = static_cast<std::size_t>(first);
  return fmt::format("{}: {} elements differ, first at {} (got {}, want {})", what, bad, first,
                     g[at], want[at]);
}

std::string exact_failure(const std::string& what, const Tensor& device, const Tensor& ref) {
  std::vector<double> want = ref.to_double_vector();
  for (auto& x : want) x = round_to(device.dtype(), x);
  return equality_failure(what, device, want);
}

}  // namespace difftx::testing
