// Run folders -> the report's series: what `difftx compare` and `difftx report` draw, read
// back from each run's metrics.jsonl, so both commands show the same things the same way.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "difftx/report/html_report.h"

namespace difftx::cli {

// One run folder's series, labelled `label`: losses, evaluations, lambda per layer (from step
// 0 when logged), learning rate, gradient norm, throughput, parameters and attention from the
// run record, the configuration (the config without seeds and output folder) and the seeds.
report::RunSeries run_series(const std::filesystem::path& run_dir, const std::string& label);

// Labels for run folders: their names, or their paths where names repeat.
std::vector<std::string> run_labels(const std::vector<std::filesystem::path>& run_dirs);

// "2026-12-01 10:02 UTC".
std::string utc_date();

}  // namespace difftx::cli
