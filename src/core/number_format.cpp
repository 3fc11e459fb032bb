// Thousands grouping of integers and rounded decimals (see number_format.h).
#include "difftx/core/number_format.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace difftx {
namespace {

// Inserts a comma every three digits from the right of a string of digits.
std::string group_digits(const std::string& digits) {
  std::string out;
  out.reserve(digits.size() + digits.size() / 3);
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace

std::string with_thousands(std::int64_t value) {
  // The magnitude as unsigned, so INT64_MIN has no overflow.
  const std::uint64_t magnitude = value < 0 ? std::uint64_t(0) - static_cast<std::uint64_t>(value)
                                            : static_cast<std::uint64_t>(value);
  std::string out = value < 0 ? std::string(1, '-') : std::string();
  out.append(group_digits(std::to_string(magnitude)));
  return out;
}

std::string with_thousands(double value, int decimals) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  decimals = std::clamp(decimals, 0, 9);
  std::string text = fmt::format("{:.{}f}", std::fabs(value), decimals);
  const std::size_t dot = text.find('.');
  const std::string whole = text.substr(0, dot);
  const std::string fraction = dot == std::string::npos ? "" : text.substr(dot);
  // "-0.00" is printed as "0.00": a rounded zero has no sign.
  const bool negative = value < 0 && text.find_first_not_of("0.") != std::string::npos;
  std::string out = negative ? std::string(1, '-') : std::string();
  out.append(group_digits(whole));
  out.append(fraction);
  return out;
}

}  // namespace difftx
