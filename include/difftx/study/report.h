// The study report: one self-contained HTML page (inline CSS and SVG, no script, no network)
// rendered from results.json alone, so it can be rendered again from a copied results file.
// Sections: the paired differences against the baseline with their confidence intervals (and
// what each says), per-arm means and standard deviations, learning curves (every seed thin, the
// mean bold), accuracy against difficulty (MQAR: pairs per model width, sequence length), the
// scaling fit with the parameter and token ratios at equal loss, and every run.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace difftx::study {

// Deterministic: the same results render to the same bytes. Throws a difftx::Error naming the
// field when `results` is not a study results document.
std::string render_study_report(const nlohmann::json& results);

}  // namespace difftx::study
