// The chart sections of the training report (html_report.h): loss, learning rate, gradient
// norm, throughput, and lambda per layer. Internal to the report layer.
#pragma once

#include <string>

#include "difftx/report/html_report.h"

namespace difftx::report::detail {

// Loss over the whole run, then the second half zoomed with smoothed training loss.
std::string loss_section(const CompareReport& report);
// Learning rate, gradient norm and throughput panels (each only when a run has the curve).
std::string training_curves_section(const CompareReport& report);
// Lambda per layer, one chart per DIFF V1 run.
std::string lambda_section(const CompareReport& report);

}  // namespace difftx::report::detail
