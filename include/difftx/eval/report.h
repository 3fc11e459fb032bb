// The evaluation report: every results.json under a folder rendered into one self-contained
// report.html (inline CSS and SVG, PNGs as data URIs, no script, no network): the models side by
// side, a section per task with its tables and figures (NLL by position, outlier tables, the
// quantization curve, the needle grid as a heatmap and the attention allocation, the ICL curve,
// attention maps), and the commands that produced the results.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace difftx::eval {

// The page for the results under `dir` (see find_results). Throws naming the file for a results
// file that does not validate, and when there is none.
std::string render_eval_report(const std::filesystem::path& dir);

// Writes render_eval_report(dir) to `out` atomically; returns the number of results rendered.
int write_eval_report(const std::filesystem::path& dir, const std::filesystem::path& out);

// The needle accuracy grid of one model and one (N, R): an SVG heatmap, depths down, lengths
// across, each cell colored by accuracy (viridis, 0 to 1) and labelled with it.
// data-heatmap="<label> N=<n> R=<r>" marks it.
std::string render_needle_heatmap(const std::string& label, int needles, int queried,
                                  const nlohmann::json& cells);

}  // namespace difftx::eval
