// Pieces of the study report shared by its table and chart files: reading numbers from
// results.json (null = unknown) and formatting them for people.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace difftx::study::report_parts {

// A number field of `j` (NaN when null or absent).
double number(const nlohmann::json& j, const char* key);

// "0.1234" with `decimals`; an em dash for NaN.
std::string fixed(double v, int decimals);
// "+0.012" / "−0.012" (typographic minus); an em dash for NaN.
std::string signed_fixed(double v, int decimals);
// Decimals that suit a metric: 3 for accuracies, 2 for outlier magnitudes, 6 for quantization's
// loss increases and KL, 4 for losses.
int metric_decimals(const std::string& metric);

// The <section>s with SVG charts: learning curves, accuracy against difficulty, scaling fit.
std::string learning_curve_section(const nlohmann::json& results);
std::string difficulty_section(const nlohmann::json& results);
std::string scaling_section(const nlohmann::json& results);
// Needle accuracy against prompt length and loss against logit bits (report_families.cpp).
std::string metric_family_section(const nlohmann::json& results);

}  // namespace difftx::study::report_parts
