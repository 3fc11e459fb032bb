// The chart sections of the study report (see report_parts.h): learning curves, accuracy
// against difficulty and the scaling fit, as inline SVG line charts (report/svg_chart.h).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "difftx/report/svg_chart.h"
#include "report_parts.h"

namespace difftx::study::report_parts {
using nlohmann::json;
using report::ChartSeries;
using report::escape_html;
using report::LineChart;
using report::LineStyle;

namespace {

std::vector<std::string> arm_names(const json& results) {
  std::vector<std::string> out;
  for (const json& a : results.at("arms")) out.push_back(a.at("name").get<std::string>());
  return out;
}

std::size_t index_of(const std::vector<std::string>& names, const std::string& name) {
  return static_cast<std::size_t>(std::find(names.begin(), names.end(), name) - names.begin());
}

std::string figure(const LineChart& chart, const std::string& caption) {
  return fmt::format("<figure>{}<figcaption>{}</figcaption></figure>\n",
                     report::render_line_chart(chart), escape_html(caption));
}

}  // namespace

std::string learning_curve_section(const json& results) {
  const std::vector<std::string> arms = arm_names(results);
  std::vector<std::pair<std::string, std::string>> cells;  // (data set, size) in order
  for (const json& c : results.at("curves")) {
    const auto cell =
        std::make_pair(c.at("dataset").get<std::string>(), c.at("size").get<std::string>());
    if (std::find(cells.begin(), cells.end(), cell) == cells.end()) cells.push_back(cell);
  }
  std::string html =
      "<section id=\"curves\"><h2>Learning curves</h2>\n<p class=\"note\">"
      "Validation loss during training (the trainer's evaluations): each seed thin, "
      "the mean over seeds bold.</p>\n";
  int k = 0;
  for (const auto& [dataset, size] : cells) {
    LineChart chart;
    chart.id = fmt::format("curve-{}", k++);
    chart.title = fmt::format("{} | {}", dataset, size);
    chart.x_label = "training tokens";
    chart.y_label = "validation loss (nats)";
    for (const json& r : results.at("runs")) {
      if (r.at("dataset") != dataset || r.at("size") != size) continue;
      const std::string arm = r.at("arm").get<std::string>();
      ChartSeries s;
      s.id = fmt::format("{} seed {}", arm, r.at("seed").dump());
      s.label = s.id;
      s.color = report::categorical_color(index_of(arms, arm));
      s.width = 1.0;
      s.opacity = 0.35;
      for (const json& p : r.at("curve")) {
        s.points.emplace_back(number(p, "tokens"), number(p, "val_loss"));
      }
      chart.series.push_back(std::move(s));
    }
    for (const json& c : results.at("curves")) {
      if (c.at("dataset") != dataset || c.at("size") != size) continue;
      const std::string arm = c.at("arm").get<std::string>();
      ChartSeries s;
      s.id = arm + " mean";
      s.label = s.id;
      s.color = report::categorical_color(index_of(arms, arm));
      s.width = 2.5;
      for (const json& p : c.at("points"))
        s.points.emplace_back(number(p, "tokens"), number(p, "mean"));
      chart.series.push_back(std::move(s));
    }
    html += figure(chart, fmt::format("Data set {}, size {}.", dataset, size));
  }
  return html + "</section>\n";
}

std::string difficulty_section(const json& results) {
  const json& diff = results.at("difficulty");
  if (diff.empty()) return "";
  const std::vector<std::string> arms = arm_names(results);
  std::string html =
      "<section id=\"difficulty\"><h2>Accuracy against difficulty</h2>\n<p "
      "class=\"note\">MQAR accuracy at the labelled positions (mean over seeds), "
      "against key-value pairs per unit of model width and against sequence length; "
      "validation is at the training shape, test at the longer test shape "
      "(dashed).</p>\n";
  struct Axis {
    const char* key;
    const char* label;
    const char* id;
  };
  for (const Axis axis :
       {Axis{"pairs_per_width", "key-value pairs per model width (pairs / d_model)",
             "difficulty-width"},
        Axis{"seq_len", "sequence length (tokens)", "difficulty-length"}}) {
    LineChart chart;
    chart.id = axis.id;
    chart.title = fmt::format("accuracy against {}", axis.label);
    chart.x_label = axis.label;
    chart.y_label = "accuracy";
    chart.y_min = 0;
    chart.y_max = 1;
    std::map<std::pair<std::string, std::string>, std::vector<std::pair<double, double>>> series;
    for (const json& d : diff) {
      series[{d.at("arm").get<std::string>(), d.at("split").get<std::string>()}].emplace_back(
          number(d, axis.key), number(d.at("accuracy"), "mean"));
    }
    for (auto& [key, points] : series) {
      std::sort(points.begin(), points.end());
      ChartSeries s;
      s.id = fmt::format("{} {}", key.first, key.second);
      s.label = s.id;
      s.color = report::categorical_color(index_of(arms, key.first));
      s.style = key.second == "test" ? LineStyle::dashed : LineStyle::solid;
      s.markers = true;
      s.points = points;
      chart.series.push_back(std::move(s));
    }
    html += figure(chart, chart.title + " (lines join the measured settings).");
  }
  html +=
      "<div class=\"table-wrap\"><table id=\"difficulty-table\"><thead><tr><th class=\"l\">data "
      "set</th><th class=\"l\">size</th><th class=\"l\">arm</th><th class=\"l\">split</th>"
      "<th>pairs</th><th>length</th><th>pairs / width</th><th>accuracy</th><th>interval</th>"
      "</tr></thead><tbody>\n";
  for (const json& d : diff) {
    const json& a = d.at("accuracy");
    html += fmt::format(
        "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td "
        "class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>[{}, {}]</td></tr>\n",
        escape_html(d.at("dataset").get<std::string>()),
        escape_html(d.at("size").get<std::string>()), escape_html(d.at("arm").get<std::string>()),
        escape_html(d.at("split").get<std::string>()), d.at("pairs").dump(), d.at("seq_len").dump(),
        fixed(number(d, "pairs_per_width"), 3), fixed(number(a, "mean"), 3),
        fixed(number(a, "ci_low"), 3), fixed(number(a, "ci_high"), 3));
  }
  return html + "</tbody></table></div></section>\n";
}

std::string scaling_section(const json& results) {
  if (!results.contains("scaling") || !results.at("scaling").is_array()) return "";
  const std::vector<std::string> arms = arm_names(results);
  std::string html =
      "<section id=\"scaling\"><h2>Scaling fit: loss against parameters and "
      "tokens</h2>\n";
  int k = 0;
  for (const json& fit : results.at("scaling")) {
    const std::string dataset = fit.at("dataset").get<std::string>();
    if (fit.contains("error")) {
      html += fmt::format("<p class=\"note\">{}: no fit ({}).</p>\n", escape_html(dataset),
                          escape_html(fit.at("error").get<std::string>()));
      continue;
    }
    const double alpha = number(fit, "alpha"), beta = number(fit, "beta");
    const bool tokens = fit.at("uses_tokens").get<bool>();
    html += fmt::format(
        "<p class=\"note\">Data set {}: least squares of log L = c<sub>arm</sub> \u2212 \u03b1 "
        "log N{} over the evaluations from {:g}% of each run's tokens on: \u03b1 = {}{}, rms "
        "residual of log L {}. At equal loss an arm needs exp((c<sub>arm</sub> \u2212 "
        "c<sub>baseline</sub>) / \u03b1) of the baseline's parameters{}. Intervals: the fit "
        "repeated on each seed's runs alone, t interval of the log ratios over seeds.</p>\n",
        escape_html(dataset), tokens ? " \u2212 \u03b2 log D" : "",
        100 * number(fit, "min_token_fraction"), fixed(alpha, 4),
        tokens ? fmt::format(", \u03b2 = {}", fixed(beta, 4)) : "",
        fixed(number(fit, "rms_log_residual"), 4),
        tokens ? " (and exp(\u0394c / \u03b2) of its tokens)" : "");

    // Final points (the largest token count of each run) and the fitted lines at that count.
    LineChart chart;
    chart.id = fmt::format("scaling-{}", k++);
    chart.title = fmt::format("{}: final validation loss against parameters", dataset);
    chart.x_label = "log10 parameters";
    chart.y_label = "validation loss (nats)";
    double max_tokens = 0, lo_n = INFINITY, hi_n = 0;
    for (const json& p : fit.at("points")) {
      max_tokens = std::max(max_tokens, number(p, "tokens"));
      lo_n = std::min(lo_n, number(p, "parameters"));
      hi_n = std::max(hi_n, number(p, "parameters"));
    }
    for (std::size_t a = 0; a < arms.size(); ++a) {
      ChartSeries pts;
      pts.id = arms[a] + " runs";
      pts.label = pts.id;
      pts.color = report::categorical_color(a);
      pts.width = 0;
      pts.markers = true;
      for (const json& p : fit.at("points")) {
        if (p.at("arm") != arms[a] || number(p, "tokens") != max_tokens) continue;
        pts.points.emplace_back(std::log10(number(p, "parameters")), number(p, "loss"));
      }
      std::sort(pts.points.begin(), pts.points.end());
      chart.series.push_back(std::move(pts));
      const double c = number(fit.at("intercepts"), arms[a].c_str());
      ChartSeries line;
      line.id = arms[a] + " fit";
      line.label = line.id;
      line.color = report::categorical_color(a);
      line.style = LineStyle::dashed;
      for (int i = 0; i <= 20; ++i) {
        const double log_n = std::log(lo_n) + (std::log(hi_n) - std::log(lo_n)) * i / 20.0;
        const double log_l = c - alpha * log_n - (tokens ? beta * std::log(max_tokens) : 0.0);
        line.points.emplace_back(log_n / std::log(10.0), std::exp(log_l));
      }
      chart.series.push_back(std::move(line));
    }
    html += figure(chart, fmt::format("Runs at their final token count ({:.0f}) and the fit there.",
                                      max_tokens));

    html +=
        "<div class=\"table-wrap\"><table class=\"scaling-table\"><thead><tr><th "
        "class=\"l\">arm</th><th class=\"l\">against</th><th>parameter ratio at equal "
        "loss</th><th>interval</th><th>token ratio at equal loss</th><th>interval</th><th "
        "class=\"l\">per seed (parameters)</th><th class=\"l\">note</th></tr></thead><tbody>\n";
    for (const json& r : fit.at("ratios")) {
      std::string per_seed;
      for (const json& s : r.at("by_seed")) {
        per_seed += fmt::format("{}{}: {}", per_seed.empty() ? "" : ", ", s.at("seed").dump(),
                                fixed(number(s, "parameter_ratio"), 3));
      }
      html += fmt::format(
          "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>[{}, {}]</td><td>{}"
          "</td><td>[{}, {}]</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>\n",
          escape_html(r.at("arm").get<std::string>()),
          escape_html(r.at("against").get<std::string>()), fixed(number(r, "parameter_ratio"), 3),
          fixed(number(r, "parameter_ci_low"), 3), fixed(number(r, "parameter_ci_high"), 3),
          fixed(number(r, "token_ratio"), 3), fixed(number(r, "token_ci_low"), 3),
          fixed(number(r, "token_ci_high"), 3), escape_html(per_seed),
          escape_html(r.at("note").get<std::string>()));
    }
    html += "</tbody></table></div>\n";
  }
  return html + "</section>\n";
}

}  // namespace difftx::study::report_parts
