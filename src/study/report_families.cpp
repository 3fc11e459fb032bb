// The report's charts of metrics measured at several settings (eval_tasks.h): needle retrieval
// accuracy against prompt length and validation loss against attention-logit bits, one chart per
// (data set, size), one line per arm (mean over seeds, the seeds' min-max as a band in the table).
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "difftx/report/svg_chart.h"
#include "report_parts.h"

namespace difftx::study::report_parts {
using nlohmann::json;
using report::ChartSeries;
using report::escape_html;
using report::LineChart;

namespace {

struct Family {
  const char* prefix;
  const char* id;
  const char* title;
  const char* x_label;
  const char* y_label;
  bool unit_y;  // y in [0, 1]
};

// The number after `prefix` in `key`, or -1.
double setting_of(const std::string& key, const std::string& prefix) {
  if (key.size() <= prefix.size() || key.compare(0, prefix.size(), prefix) != 0) return -1;
  const std::string rest = key.substr(prefix.size());
  if (rest.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stod(rest);
}

}  // namespace

std::string metric_family_section(const json& results) {
  static const Family families[] = {
      {"needle_accuracy_", "needle", "needle retrieval accuracy against prompt length",
       "prompt length (tokens)", "accuracy", true},
      {"quant_loss_b", "quant", "validation loss against attention-logit bits",
       "bits of the attention logits (16: not quantized)", "validation loss (nats)", false},
  };
  std::vector<std::string> arms;
  for (const json& a : results.at("arms")) arms.push_back(a.at("name").get<std::string>());
  std::string html;
  int k = 0;
  for (const Family& f : families) {
    // (data set, size) -> arm -> (setting, mean over seeds)
    std::map<std::pair<std::string, std::string>,
             std::map<std::string, std::vector<std::pair<double, double>>>>
        charts;
    for (const json& s : results.at("summaries")) {
      const double x = setting_of(s.at("metric").get<std::string>(), f.prefix);
      if (x < 0) continue;
      charts[{s.at("dataset").get<std::string>(), s.at("size").get<std::string>()}]
            [s.at("arm").get<std::string>()]
                .emplace_back(x, number(s, "mean"));
    }
    for (auto& [cell, by_arm] : charts) {
      LineChart chart;
      chart.id = fmt::format("family-{}-{}", f.id, k++);
      chart.title = fmt::format("{} | {} | {}", f.title, cell.first, cell.second);
      chart.x_label = f.x_label;
      chart.y_label = f.y_label;
      if (f.unit_y) {
        chart.y_min = 0;
        chart.y_max = 1;
      }
      for (auto& [arm, points] : by_arm) {
        std::sort(points.begin(), points.end());
        ChartSeries s;
        s.id = arm;
        s.label = arm;
        const auto at = std::find(arms.begin(), arms.end(), arm);
        s.color = report::categorical_color(static_cast<std::size_t>(at - arms.begin()));
        s.markers = true;
        s.points = points;
        chart.series.push_back(std::move(s));
      }
      html += fmt::format(
          "<figure>{}<figcaption>{}</figcaption></figure>\n", report::render_line_chart(chart),
          escape_html(chart.title + " (mean over seeds; intervals in the tables above)."));
    }
  }
  if (html.empty()) return "";
  return "<section id=\"settings\"><h2>Measurements across settings</h2>\n" + html + "</section>\n";
}

}  // namespace difftx::study::report_parts
