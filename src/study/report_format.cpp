// Number helpers of the study report (see report_parts.h).
#include <fmt/format.h>

#include <cmath>

#include "report_parts.h"

namespace difftx::study::report_parts {

double number(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j.at(key).is_number()) return NAN;
  return j.at(key).get<double>();
}

std::string fixed(double v, int decimals) {
  if (!std::isfinite(v)) return "\u2014";
  std::string text = fmt::format("{:.{}f}", std::fabs(v), decimals);
  const bool zero = text.find_first_not_of("0.") == std::string::npos;
  return (v < 0 && !zero ? "\u2212" : "") + text;
}

std::string signed_fixed(double v, int decimals) {
  if (!std::isfinite(v)) return "\u2014";
  const std::string text = fixed(std::fabs(v), decimals);
  if (text.find_first_not_of("0.") == std::string::npos) return text;
  return (v < 0 ? "\u2212" : "+") + text;
}

int metric_decimals(const std::string& metric) {
  if (metric.find("accuracy") != std::string::npos) return 3;
  if (metric.find("top1") != std::string::npos) return 2;  // outlier magnitudes and ratios
  // Quantization's loss increases and KL are small: keep their leading digits.
  if (metric.rfind("quant_delta", 0) == 0 || metric.rfind("quant_kl", 0) == 0) return 6;
  return 4;
}

}  // namespace difftx::study::report_parts
