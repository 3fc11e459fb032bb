// The training report of `difftx compare` and `difftx report`: one self-contained HTML page
// (inline CSS and SVG, no script, no network) comparing any number of runs, e.g. a DIFF model
// with its parameter-matched softmax baseline, over several seeds.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace difftx::report {

// One trained model's measurements. Points are (step, value); NaN/inf values are skipped in
// charts (the curve breaks there). Unknown scalars may be NaN (params: <= 0) and show as "—".
struct RunSeries {
  std::string label;      // e.g. "DIFF V1"; also names the curves: data-series="<label> train"
  std::string attention;  // "diff_v1", "diff_v2" or "softmax" (the baseline is "softmax")
  std::int64_t params = 0;
  std::vector<std::pair<double, double>> train_loss;  // (step, loss)
  std::vector<std::pair<double, double>> val_loss;    // (step, loss)
  // DIFF V1 only: lambda_per_layer[l] = (step, lambda of layer l); empty otherwise.
  std::vector<std::vector<std::pair<double, double>>> lambda_per_layer;
  double tokens_per_second = 0;  // training throughput
  double final_val_loss = 0;     // nats per token
  // Optional per-step curves; a panel is drawn when any run has its curve.
  std::vector<std::pair<double, double>> learning_rate;  // (step, lr)
  std::vector<std::pair<double, double>> grad_norm;      // (step, global norm before clipping)
  std::vector<std::pair<double, double>> throughput;     // (step, tokens per second)
  // Runs with the same non-empty `configuration` differ only in their seeds; `seed` says
  // which (e.g. "init 1, data 1"). Used for the seed caveat and the spread over seeds.
  std::string configuration;
  std::string seed;
};

struct CompareReport {
  std::string title;                         // page heading and <title>
  std::string subtitle;                      // config, corpus, date...; line breaks are kept
  std::string generator = "difftx compare";  // named in the page's footer and meta tag
  std::vector<RunSeries> runs;
};

// The whole page. Sections:
//   Summary: one sentence per non-baseline run against the baseline, and a table
//     (id="summary-table"): model, attention, parameters, final validation loss, perplexity
//     exp(loss), tokens/s, and DIFF - baseline differences (loss, perplexity %, speed ratio).
//     The baseline is the first run with attention "softmax".
//   Loss: every run's training loss (thin, light; data-series="<label> train") and validation
//     loss (dashed with points; data-series="<label> val") over steps; then the same zoomed
//     to the second half of training, training loss as a centered moving average
//     (data-series="<label> train (smoothed)").
//     The smoothed legend names the window ("moving average of 5 steps"), or says "not
//     smoothed" when there are too few points for a window.
//   Seeds: when runs carry a `configuration`, a note per configuration with two or more
//     seeds (mean and range of the final validation loss), and a caveat whenever two or more
//     configurations are compared and one of them rests on a single seed.
//   Learning rate, Gradient norm, Throughput: one chart each (data-series="<label> lr",
//     "<label> grad norm", "<label> tokens/s"), drawn when any run has the curve.
//   Lambda: per DIFF run with lambda_per_layer, one chart with a line per layer
//     (data-series="<label> lambda layer <l>", l 0-based, viridis from first to last layer),
//     over the same steps as the loss chart (from step 0 when the run logged it).
// All text is HTML-escaped. Deterministic: the same report renders to the same bytes.
std::string render_compare_report(const CompareReport& report);

// Renders and writes the page atomically (temp file + fsync + rename), creating the parent
// folder if needed. Throws difftx::Error naming the path on failure.
void write_compare_report(const std::filesystem::path& path, const CompareReport& report);

}  // namespace difftx::report
