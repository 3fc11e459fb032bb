// Chart sections of the training report: loss (full and zoomed), learning rate, gradient
// norm, throughput and lambda per layer (see report_charts.h).
#include "report_charts.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "difftx/report/svg_chart.h"

namespace difftx::report::detail {
namespace {

using Points = std::vector<std::pair<double, double>>;

bool finite(double x) {
  return std::isfinite(x);
}

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

std::string figure(const LineChart& chart, const std::string& caption) {
  return "<figure>\n" + render_line_chart(chart) + "<figcaption>" + escape_html(caption) +
         "</figcaption>\n</figure>\n";
}

// The last finite training step over all runs (the right end of step axes), if any.
std::optional<double> last_training_step(const CompareReport& report) {
  std::optional<double> last;
  for (const auto& run : report.runs) {
    for (const auto& p : run.train_loss) {
      if (finite(p.first) && (!last || p.first > *last)) last = p.first;
    }
  }
  return last;
}

ChartSeries validation_series(const RunSeries& run, std::size_t i) {
  ChartSeries val;
  val.id = run.label + " val";
  val.label = run.label + " validation";
  val.points = run.val_loss;
  val.color = categorical_color(i);
  val.style = LineStyle::dashed;
  val.width = 2.2;
  val.markers = true;
  return val;
}

}  // namespace

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
  for (std::size_t i = 0; i < report.runs.size(); ++i)
    full.series.push_back(validation_series(report.runs[i], i));
  out += figure(full,
                "Training loss per logged step (light lines) and validation loss (dashed, points), "
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
    std::size_t largest_window = 1;
    for (std::size_t i = 0; i < report.runs.size(); ++i) {
      const auto& run = report.runs[i];
      std::size_t window = 1;
      ChartSeries train;
      train.id = run.label + " train (smoothed)";
      train.points = smooth(run.train_loss, &window);
      largest_window = std::max(largest_window, window);
      train.label = window > 1
                        ? fmt::format("{} train (moving average of {} steps)", run.label, window)
                        : fmt::format("{} train (not smoothed: too few steps)", run.label);
      train.color = categorical_color(i);
      train.width = 1.8;
      train.opacity = 0.9;
      zoom.series.push_back(std::move(train));
    }
    for (std::size_t i = 0; i < report.runs.size(); ++i)
      zoom.series.push_back(validation_series(report.runs[i], i));
    out += figure(
        zoom, largest_window > 1
                  ? "The second half of the steps with the y axis fitted to it; training loss is a "
                    "centered moving average of the logged values."
                  : "The second half of the steps with the y axis fitted to it; training loss as "
                    "logged (too few steps to smooth).");
  }
  out += "</section>\n";
  return out;
}

std::string training_curves_section(const CompareReport& report) {
  struct Panel {
    const char* id;
    const char* heading;
    const char* series_suffix;
    const char* y_label;
    Points RunSeries::*curve;
    const char* caption;
  };
  static const Panel panels[] = {
      {"lr", "Learning rate", "lr", "learning rate", &RunSeries::learning_rate,
       "The learning rate of each optimizer step (warmup, then decay)."},
      {"grad-norm", "Gradient norm", "grad norm", "global L2 norm", &RunSeries::grad_norm,
       "The global gradient norm of each step before clipping (steps above optim.grad_clip were "
       "scaled down to it)."},
      {"throughput", "Throughput", "tokens/s", "tokens per second", &RunSeries::throughput,
       "Training tokens per second of each step (wall time of the step, device synchronised)."},
  };
  const auto last = last_training_step(report);
  std::string out;
  for (const Panel& panel : panels) {
    bool any = false;
    for (const auto& run : report.runs) any = any || !(run.*(panel.curve)).empty();
    if (!any) continue;
    LineChart chart;
    chart.id = fmt::format("{}-chart", panel.id);
    chart.title = panel.heading;
    chart.x_label = "step";
    chart.y_label = panel.y_label;
    if (last) chart.x_max = *last;
    for (std::size_t i = 0; i < report.runs.size(); ++i) {
      const auto& run = report.runs[i];
      ChartSeries s;
      s.id = fmt::format("{} {}", run.label, panel.series_suffix);
      s.label = run.label;
      s.points = run.*(panel.curve);
      s.color = categorical_color(i);
      s.width = 1.4;
      s.opacity = 0.8;
      chart.series.push_back(std::move(s));
    }
    out += fmt::format("<section id=\"{}\">\n<h2>{}</h2>\n", panel.id, panel.heading);
    out += figure(chart, panel.caption);
    out += "</section>\n";
  }
  return out;
}

std::string lambda_section(const CompareReport& report) {
  std::string out = "<section id=\"lambda\">\n<h2>&#955; per layer</h2>\n";
  const auto last = last_training_step(report);
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
    // The same steps as the loss chart: from 0 to the last training step.
    chart.x_min = 0.0;
    if (last && *last > 0) chart.x_max = *last;
    const std::size_t layers = run.lambda_per_layer.size();
    for (std::size_t l = 0; l < layers; ++l) {
      ChartSeries s;
      s.id = fmt::format("{} lambda layer {}", run.label, l);
      s.label = fmt::format("layer {}", l);
      s.points = run.lambda_per_layer[l];
      s.color = sequential_color(
          layers > 1 ? 0.88 * static_cast<double>(l) / static_cast<double>(layers - 1) : 0.0);
      s.width = 1.8;
      s.markers = true;
      chart.series.push_back(std::move(s));
    }
    out += figure(chart,
                  fmt::format("{}: the learned \u03bb of each layer (0-based, dark = first layer, "
                              "light = last) at each evaluation, from its initial value at step 0 "
                              "when the run logged it; \u03bb scales the subtracted attention map.",
                              run.label));
  }
  if (!any) {
    out += "<p class=\"note\">No &#955; curves: only DIFF V1 runs record &#955; per layer.</p>\n";
  }
  out += "</section>\n";
  return out;
}

}  // namespace difftx::report::detail
