// The `difftx compare` HTML page: summary table, loss charts and lambda-per-layer charts.
#include "difftx/report/html_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "difftx/core/atomic_file.h"
#include "difftx/report/svg_chart.h"

namespace difftx::report {
namespace {

using Points = std::vector<std::pair<double, double>>;

constexpr const char* kDash = "\u2014";   // em dash: value unknown
constexpr const char* kMinus = "\u2212";  // typographic minus sign

constexpr const char* kStyle = R"css(
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f6f4; color: #1a1a1a;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; }
main { max-width: 980px; margin: 0 auto; padding: 28px 24px 40px; background: #ffffff; min-height: 100vh; }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #e2e2e2; }
.subtitle { margin: 0; color: #555555; white-space: pre-line; }
.headline { margin: 8px 0 14px; }
.note { color: #555555; font-size: 14px; margin: 6px 0 12px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 8px; border-bottom: 1px solid #e6e6e6; text-align: right; white-space: nowrap; }
th { background: #f1f1ef; font-weight: 600; border-bottom: 2px solid #cfcfcf; vertical-align: bottom;
  white-space: normal; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
td .swatch { display: inline-block; width: 11px; height: 11px; border-radius: 2px; margin-right: 7px;
  vertical-align: -1px; }
.better { color: #0060a0; font-weight: 600; }
.worse { color: #b34700; font-weight: 600; }
.muted { color: #777777; }
.sub { color: #777777; font-size: 12px; }
figure { margin: 14px 0 22px; }
figure svg { display: block; max-width: 100%; height: auto; }
figcaption { color: #555555; font-size: 13px; margin-top: 4px; }
footer { margin-top: 36px; color: #888888; font-size: 12px; }
)css";

bool finite(double x) { return std::isfinite(x); }

std::string group_thousands(std::int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? std::string(kMinus) + out : out;
}

std::string short_count(double n) {
  if (n >= 1e9) return fmt::format("{:.2f}B", n / 1e9);
  if (n >= 1e6) return fmt::format("{:.1f}M", n / 1e6);
  if (n >= 1e3) return fmt::format("{:.1f}k", n / 1e3);
  return fmt::format("{:.0f}", n);
}

// "+1.23" / "−1.23" with `decimals` decimals (zero is "0.00", unsigned).
std::string signed_number(double x, int decimals) {
  std::string text = fmt::format("{:.{}f}", std::abs(x), decimals);
  if (text.find_first_not_of("0.") == std::string::npos) return text;
  return (x < 0 ? std::string(kMinus) : std::string("+")) + text;
}

std::string loss_text(double loss) { return finite(loss) ? fmt::format("{:.4f}", loss) : kDash; }

std::optional<double> perplexity(double loss) {
  if (!finite(loss)) return std::nullopt;
  double p = std::exp(loss);
  return finite(p) ? std::optional<double>(p) : std::nullopt;
}

std::string perplexity_text(double loss) {
  auto p = perplexity(loss);
  if (!p) return kDash;
  return *p < 1e5 ? fmt::format("{:.2f}", *p) : fmt::format("{:.3g}", *p);
}

std::string speed_text(double tokens_per_second) {
  if (!finite(tokens_per_second) || tokens_per_second <= 0) return kDash;
  return group_thousands(std::llround(tokens_per_second));
}

std::string params_text(std::int64_t params) {
  if (params <= 0) return kDash;
  return group_thousands(params) + " <span class=\"sub\">(" + short_count(static_cast<double>(params)) + ")</span>";
}

// The last finite step in a run's training curve, if any.
std::optional<double> last_step(const RunSeries& run) {
  for (auto it = run.train_loss.rbegin(); it != run.train_loss.rend(); ++it) {
    if (finite(it->first) && finite(it->second)) return it->first;
  }
  return std::nullopt;
}

const RunSeries* find_baseline(const CompareReport& report) {
  for (const auto& run : report.runs) {
    if (run.attention == "softmax") return &run;
  }
  return nullptr;
}

// "better" when lower is better and delta < 0.
const char* delta_class(double delta) { return delta < 0 ? "better" : delta > 0 ? "worse" : "muted"; }

// Centered moving average over the finite points, window about n/25 points (odd, at least 1),
// shrinking at the ends.
Points smooth(const Points& points, std::size_t* window_out) {
  Points clean;
  for (const auto& p : points) {
    if (finite(p.first) && finite(p.second)) clean.push_back(p);
  }
  const std::size_t n = clean.size();
  const std::size_t half = n / 50;
  *window_out = 2 * half + 1;
  std::vector<double> prefix(n + 1, 0.0);
  for (std::size_t i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + clean[i].second;
  Points out(n);
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t lo = i >= half ? i - half : 0;
    std::size_t hi = std::min(n, i + half + 1);
    out[i] = {clean[i].first, (prefix[hi] - prefix[lo]) / static_cast<double>(hi - lo)};
  }
  return out;
}

std::string summary_sentences(const CompareReport& report, const RunSeries* baseline) {
  if (report.runs.empty()) return "<p class=\"headline\">This report contains no runs.</p>\n";
  if (!baseline) {
    return "<p class=\"headline\">No softmax baseline among the runs: differences are not shown.</p>\n";
  }
  std::string out;
  for (const auto& run : report.runs) {
    if (&run == baseline) continue;
    if (!finite(run.final_val_loss) || !finite(baseline->final_val_loss)) {
      out += fmt::format("<p class=\"headline\"><strong>{}</strong>: final validation loss unknown, no "
                         "comparison with <strong>{}</strong>.</p>\n",
                         escape_html(run.label), escape_html(baseline->label));
      continue;
    }
    const double delta = run.final_val_loss - baseline->final_val_loss;
    out += fmt::format(
        "<p class=\"headline\"><strong>{}</strong> reaches a final validation loss of <strong>{}</strong> "
        "against <strong>{}</strong> for <strong>{}</strong>: <span class=\"{}\">{}</span> nats per token",
        escape_html(run.label), loss_text(run.final_val_loss), loss_text(baseline->final_val_loss),
        escape_html(baseline->label), delta_class(delta), signed_number(delta, 4));
    auto p_run = perplexity(run.final_val_loss), p_base = perplexity(baseline->final_val_loss);
    if (p_run && p_base) {
      out += fmt::format(" (perplexity {} vs {}, {}%)", perplexity_text(run.final_val_loss),
                         perplexity_text(baseline->final_val_loss),
                         signed_number(100.0 * (*p_run / *p_base - 1.0), 1));
    }
    out += ". Lower is better.";
    if (run.params > 0 && baseline->params > 0) {
      out += fmt::format(" Parameters: {} vs {} ({}%).", group_thousands(run.params),
                         group_thousands(baseline->params),
                         signed_number(100.0 * (static_cast<double>(run.params) /
                                                static_cast<double>(baseline->params) - 1.0), 2));
    }
    out += "</p>\n";
  }
  return out;
}

std::string summary_table(const CompareReport& report, const RunSeries* baseline) {
  std::string out =
      "<div class=\"table-wrap\">\n<table id=\"summary-table\">\n<thead><tr><th>Model</th><th>Attention</th><th>Parameters</th>"
      "<th>Steps</th><th>Final val loss</th><th>Perplexity</th><th>Tokens/s</th>"
      "<th>&#916; val loss<br><span class=\"sub\">vs baseline</span></th>"
      "<th>&#916; perplexity<br><span class=\"sub\">vs baseline</span></th>"
      "<th>Speed<br><span class=\"sub\">vs baseline</span></th></tr></thead>\n<tbody>\n";
  for (std::size_t i = 0; i < report.runs.size(); ++i) {
    const auto& run = report.runs[i];
    auto steps = last_step(run);
    out += fmt::format(
        "<tr><td><span class=\"swatch\" style=\"background:{}\"></span>{}</td><td>{}</td><td>{}</td>"
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
        categorical_color(i), escape_html(run.label), escape_html(run.attention), params_text(run.params),
        steps ? format_tick(*steps, 1) : kDash, loss_text(run.final_val_loss), perplexity_text(run.final_val_loss),
        speed_text(run.tokens_per_second));
    if (&run == baseline) {
      out += "<td class=\"muted\">baseline</td><td class=\"muted\">baseline</td><td class=\"muted\">baseline</td>";
    } else if (!baseline) {
      out += fmt::format("<td>{0}</td><td>{0}</td><td>{0}</td>", kDash);
    } else {
      if (finite(run.final_val_loss) && finite(baseline->final_val_loss)) {
        double delta = run.final_val_loss - baseline->final_val_loss;
        out += fmt::format("<td class=\"{}\">{}</td>", delta_class(delta), signed_number(delta, 4));
      } else {
        out += fmt::format("<td>{}</td>", kDash);
      }
      auto p_run = perplexity(run.final_val_loss), p_base = perplexity(baseline->final_val_loss);
      if (p_run && p_base) {
        double rel = 100.0 * (*p_run / *p_base - 1.0);
        out += fmt::format("<td class=\"{}\">{}%</td>", delta_class(rel), signed_number(rel, 1));
      } else {
        out += fmt::format("<td>{}</td>", kDash);
      }
      if (finite(run.tokens_per_second) && run.tokens_per_second > 0 && finite(baseline->tokens_per_second) &&
          baseline->tokens_per_second > 0) {
        out += fmt::format("<td>&#215;{:.2f}</td>", run.tokens_per_second / baseline->tokens_per_second);
      } else {
        out += fmt::format("<td>{}</td>", kDash);
      }
    }
    out += "</tr>\n";
  }
  out += "</tbody>\n</table>\n</div>\n";
  return out;
}

std::string figure(const LineChart& chart, const std::string& caption) {
  return "<figure>\n" + render_line_chart(chart) + "<figcaption>" + escape_html(caption) +
         "</figcaption>\n</figure>\n";
}

std::string loss_section(const CompareReport& report) {
  std::string out = "<section id=\"loss\">\n<h2>Loss</h2>\n";
  LineChart full;
  full.id = "loss-chart";
  full.title = "Training and validation loss";
  full.x_label = "step";
  full.y_label = "loss (nats per token)";
  for (std::size_t i = 0; i < report.runs.size(); ++i) {
    const auto& run = report.runs[i];
    ChartSeries train;
    train.id = run.label + " train";
    train.label = run.label + " train";
    train.points = run.train_loss;
    train.color = categorical_color(i);
    train.width = 1.2;
    train.opacity = 0.45;
    full.series.push_back(std::move(train));
  }
  for (std::size_t i = 0; i < report.runs.size(); ++i) {
    const auto& run = report.runs[i];
    ChartSeries val;
    val.id = run.label + " val";
    val.label = run.label + " validation";
    val.points = run.val_loss;
    val.color = categorical_color(i);
    val.style = LineStyle::dashed;
    val.width = 2.2;
    val.markers = true;
    full.series.push_back(std::move(val));
  }
  out += figure(full, "Training loss per logged step (light lines) and validation loss (dashed, points), "
                      "over the whole run.");

  // Second half of training, training loss smoothed so that small gaps are visible.
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo;
  std::size_t train_points = 0;
  for (const auto& run : report.runs) {
    for (const auto* curve : {&run.train_loss, &run.val_loss}) {
      for (const auto& p : *curve) {
        if (!finite(p.first) || !finite(p.second)) continue;
        x_lo = std::min(x_lo, p.first);
        x_hi = std::max(x_hi, p.first);
        if (curve == &run.train_loss) ++train_points;
      }
    }
  }
  if (train_points >= 20 && x_hi > x_lo) {
    LineChart zoom;
    zoom.id = "loss-zoom-chart";
    zoom.title = "Second half of training (zoomed)";
    zoom.x_label = "step";
    zoom.y_label = "loss (nats per token)";
    zoom.x_min = x_lo + 0.5 * (x_hi - x_lo);
    std::size_t window = 1;
    for (std::size_t i = 0; i < report.runs.size(); ++i) {
      const auto& run = report.runs[i];
      ChartSeries train;
      train.id = run.label + " train (smoothed)";
      train.points = smooth(run.train_loss, &window);
      train.label = fmt::format("{} train (moving average of {})", run.label, window);
      train.color = categorical_color(i);
      train.width = 1.8;
      train.opacity = 0.9;
      zoom.series.push_back(std::move(train));
    }
    for (std::size_t i = 0; i < report.runs.size(); ++i) {
      const auto& run = report.runs[i];
      ChartSeries val;
      val.id = run.label + " val";
      val.label = run.label + " validation";
      val.points = run.val_loss;
      val.color = categorical_color(i);
      val.style = LineStyle::dashed;
      val.width = 2.2;
      val.markers = true;
      zoom.series.push_back(std::move(val));
    }
    out += figure(zoom, "The second half of the steps with the y axis fitted to it; training loss is a "
                        "centered moving average of the logged values.");
  }
  out += "</section>\n";
  return out;
}

std::string lambda_section(const CompareReport& report) {
  std::string out = "<section id=\"lambda\">\n<h2>&#955; per layer</h2>\n";
  bool any = false;
  for (std::size_t r = 0; r < report.runs.size(); ++r) {
    const auto& run = report.runs[r];
    if (run.lambda_per_layer.empty()) continue;
    any = true;
    LineChart chart;
    chart.id = fmt::format("lambda-chart-{}", r);
    chart.title = "\u03bb per layer \u2014 " + run.label;
    chart.x_label = "step";
    chart.y_label = "\u03bb";
    const std::size_t layers = run.lambda_per_layer.size();
    for (std::size_t l = 0; l < layers; ++l) {
      ChartSeries s;
      s.id = fmt::format("{} lambda layer {}", run.label, l);
      s.label = fmt::format("layer {}", l);
      s.points = run.lambda_per_layer[l];
      s.color = sequential_color(layers > 1 ? 0.88 * static_cast<double>(l) / static_cast<double>(layers - 1) : 0.0);
      s.width = 1.8;
      chart.series.push_back(std::move(s));
    }
    out += figure(chart, fmt::format("{}: the learned \u03bb of each layer (0-based, dark = first layer, "
                                     "light = last), which scales the subtracted attention map.",
                                     run.label));
  }
  if (!any) {
    out += "<p class=\"note\">No &#955; curves: only DIFF V1 runs record &#955; per layer.</p>\n";
  }
  out += "</section>\n";
  return out;
}

}  // namespace

std::string render_compare_report(const CompareReport& report) {
  const RunSeries* baseline = find_baseline(report);
  std::string out;
  out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  out += "<meta name=\"generator\" content=\"difftx compare\">\n";
  out += fmt::format("<title>{}</title>\n<style>{}</style>\n</head>\n<body>\n<main>\n", escape_html(report.title),
                     kStyle);
  out += fmt::format("<header>\n<h1>{}</h1>\n", escape_html(report.title));
  if (!report.subtitle.empty()) out += fmt::format("<p class=\"subtitle\">{}</p>\n", escape_html(report.subtitle));
  out += "</header>\n<section id=\"summary\">\n<h2>Summary</h2>\n";
  out += summary_sentences(report, baseline);
  out += summary_table(report, baseline);
  out += "<p class=\"note\">Perplexity is exp(validation loss). &#916; columns: this run minus the "
         "softmax baseline (negative = lower loss = better); speed is the ratio of training "
         "tokens per second.</p>\n</section>\n";
  out += loss_section(report);
  out += lambda_section(report);
  out += "<footer>Generated by difftx compare. Self-contained page: no scripts, no network access.</footer>\n";
  out += "</main>\n</body>\n</html>\n";
  return out;
}

void write_compare_report(const std::filesystem::path& path, const CompareReport& report) {
  if (path.has_parent_path()) ensure_writable_directory(path.parent_path());
  write_file_atomic(path, render_compare_report(report));
}

}  // namespace difftx::report
