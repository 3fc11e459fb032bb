// The study report page: heading, paired differences, per-arm summaries, the chart sections
// (report_charts.cpp) and every run, as one self-contained HTML file (see report.h).
#include "difftx/study/report.h"

#include <fmt/format.h>

#include <cmath>
#include <map>

#include "difftx/core/error.h"
#include "difftx/core/number_format.h"
#include "difftx/report/svg_chart.h"
#include "difftx/study/analysis.h"
#include "report_parts.h"

namespace difftx::study {
using nlohmann::json;
using report::escape_html;
using namespace report_parts;

namespace {

constexpr const char* kStyle = R"css(
* { box-sizing: border-box; }
body { margin: 0; background: #f6f6f4; color: #1a1a1a;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1040px; margin: 0 auto; padding: 28px 24px 40px; background: #ffffff; }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #e2e2e2; }
h3 { font-size: 16px; margin: 20px 0 6px; }
.subtitle { margin: 0; color: #555555; white-space: pre-line; }
.note { color: #555555; font-size: 14px; margin: 6px 0 12px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 8px; border-bottom: 1px solid #e6e6e6; text-align: right; white-space: nowrap; }
th { background: #f1f1ef; font-weight: 600; border-bottom: 2px solid #cfcfcf; white-space: normal; }
td.l, th.l { text-align: left; }
.better { color: #0060a0; font-weight: 600; }
.worse { color: #b34700; font-weight: 600; }
.muted { color: #777777; }
.partial { color: #7a4a00; background: #fff6e5; border-left: 3px solid #e69f00; padding: 6px 10px; }
figure { margin: 14px 0 22px; }
figure svg { display: block; max-width: 100%; height: auto; }
figcaption { color: #555555; font-size: 13px; margin-top: 4px; }
footer { margin-top: 36px; color: #888888; font-size: 12px; }
)css";

const json& field(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) {
    fail("study results: missing field '{}': not a results.json of `difftx study`", key);
  }
  return j.at(key);
}

bool higher_is_better(const json& results, const std::string& key) {
  for (const json& m : field(results, "metrics")) {
    if (m.at("key") == key) return m.at("better") == "higher";
  }
  return false;
}

// What one paired difference says, in words, with its CSS class.
std::pair<std::string, std::string> reading(const json& p, bool higher_better) {
  const double n = number(p, "n");
  if (!(n >= 2)) return {"one seed: no interval", "muted"};
  const double lo = number(p, "ci_low"), hi = number(p, "ci_high");
  if (!(lo > 0) && !(hi < 0)) return {"no difference shown (interval holds 0)", "muted"};
  const bool up = lo > 0;
  const bool better = up == higher_better;
  return {fmt::format("{} {} than the baseline", p.at("arm").get<std::string>(),
                      up ? "higher" : "lower"),
          better ? "better" : "worse"};
}

std::string paired_section(const json& results) {
  const json& paired = field(results, "paired");
  const double confidence = number(results, "confidence");
  std::string html = "<section id=\"paired\"><h2>Paired differences against the baseline</h2>\n";
  html += fmt::format(
      "<p class=\"note\">Each difference is arm \u2212 {} on the same seed and the same data; "
      "the interval is the mean difference \u00b1 t<sub>{:g}, n\u22121</sub> \u00b7 s/\u221an "
      "over seeds (Student t, two-sided {:g}%), p the two-sided p-value of a paired t test. An "
      "interval that holds 0 shows no difference at this number of seeds.</p>\n",
      escape_html(field(results, "baseline").get<std::string>()), (1 + confidence) / 2,
      confidence * 100);
  if (paired.empty()) return html + "<p class=\"note\">No paired differences.</p></section>\n";
  html +=
      "<div class=\"table-wrap\"><table id=\"paired-table\"><thead><tr><th class=\"l\">data "
      "set</th><th class=\"l\">size</th><th class=\"l\">arm</th><th class=\"l\">metric</th>"
      "<th>mean difference</th><th>interval</th><th>p</th><th>seeds</th><th "
      "class=\"l\">reading</th></tr></thead><tbody>\n";
  for (const json& p : paired) {
    const std::string metric = p.at("metric").get<std::string>();
    const int dec = metric_decimals(metric);
    const auto [text, css] = reading(p, higher_is_better(results, metric));
    html += fmt::format(
        "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td "
        "class=\"l\">{}</td><td>{}</td><td>[{}, {}]</td><td>{}</td><td>{}</td><td class=\"l "
        "{}\">{}</td></tr>\n",
        escape_html(p.at("dataset").get<std::string>()),
        escape_html(p.at("size").get<std::string>()), escape_html(p.at("arm").get<std::string>()),
        escape_html(metric), signed_fixed(number(p, "mean"), dec),
        signed_fixed(number(p, "ci_low"), dec), signed_fixed(number(p, "ci_high"), dec),
        fixed(number(p, "p"), 3), p.at("n").get<int>(), css, escape_html(text));
  }
  return html + "</tbody></table></div></section>\n";
}

std::string summary_section(const json& results) {
  std::string html =
      "<section id=\"arms\"><h2>Per arm: mean \u00b1 standard deviation over "
      "seeds</h2>\n";
  std::vector<std::string> arms;
  for (const json& a : field(results, "arms")) arms.push_back(a.at("name").get<std::string>());
  for (const json& m : field(results, "metrics")) {
    const std::string key = m.at("key").get<std::string>();
    const int dec = metric_decimals(key);
    html += fmt::format(
        "<h3>{}</h3>\n<div class=\"table-wrap\"><table data-metric=\"{}\"><thead>"
        "<tr><th class=\"l\">data set</th><th class=\"l\">size</th>",
        escape_html(m.at("label").get<std::string>()), escape_html(key));
    for (const auto& a : arms) html += fmt::format("<th>{}</th>", escape_html(a));
    html += "</tr></thead><tbody>\n";
    // Rows: (data set, size) in results order; cells: each arm's summary.
    std::vector<std::pair<std::string, std::string>> rows;
    std::map<std::tuple<std::string, std::string, std::string>, const json*> cell;
    for (const json& s : field(results, "summaries")) {
      if (s.at("metric") != key) continue;
      const auto row =
          std::make_pair(s.at("dataset").get<std::string>(), s.at("size").get<std::string>());
      if (std::find(rows.begin(), rows.end(), row) == rows.end()) rows.push_back(row);
      cell[{row.first, row.second, s.at("arm").get<std::string>()}] = &s;
    }
    for (const auto& [dataset, size] : rows) {
      html += fmt::format("<tr><td class=\"l\">{}</td><td class=\"l\">{}</td>",
                          escape_html(dataset), escape_html(size));
      for (const auto& a : arms) {
        const auto it = cell.find({dataset, size, a});
        if (it == cell.end()) {
          html += "<td>\u2014</td>";
          continue;
        }
        const json& s = *it->second;
        html += fmt::format("<td>{} \u00b1 {} <span class=\"muted\">(n={})</span></td>",
                            fixed(number(s, "mean"), dec), fixed(number(s, "std"), dec),
                            s.at("n").get<int>());
      }
      html += "</tr>\n";
    }
    html += "</tbody></table></div>\n";
  }
  return html + "</section>\n";
}

std::string runs_section(const json& results) {
  std::vector<std::string> keys;
  for (const json& m : field(results, "metrics")) keys.push_back(m.at("key").get<std::string>());
  std::string html =
      "<section id=\"runs\"><h2>Every run</h2>\n<div class=\"table-wrap\"><table "
      "id=\"runs-table\"><thead><tr><th class=\"l\">run</th><th class=\"l\">attention</th>"
      "<th>parameters</th><th>tokens</th>";
  for (const auto& k : keys) html += fmt::format("<th>{}</th>", escape_html(k));
  html += "<th>train s</th><th>tokens/s</th></tr></thead><tbody>\n";
  for (const json& r : field(results, "runs")) {
    html += fmt::format(
        "<tr><td class=\"l\"><code>{}</code></td><td class=\"l\">{}</td><td>{}</td>"
        "<td>{}</td>",
        escape_html(r.at("id").get<std::string>()),
        escape_html(r.at("attention").get<std::string>()),
        with_thousands(r.at("parameters").get<std::int64_t>()),
        with_thousands(static_cast<std::int64_t>(number(r, "tokens"))));
    for (const auto& k : keys) {
      html +=
          fmt::format("<td>{}</td>", fixed(number(r.at("metrics"), k.c_str()), metric_decimals(k)));
    }
    const json& t = r.at("timing");
    html += fmt::format("<td>{}</td><td>{}</td></tr>\n", fixed(number(t, "train_seconds"), 1),
                        with_thousands(number(t, "tokens_per_second"), 0));
  }
  return html + "</tbody></table></div></section>\n";
}

}  // namespace

std::string render_study_report(const json& results) {
  if (!results.is_object() || results.value("schema", std::string()) != kResultsSchema) {
    fail(
        "not a study results document (schema \"{}\" expected): give the results.json of "
        "`difftx study`",
        kResultsSchema);
  }
  const std::string study = field(results, "study").get<std::string>();
  const json& timing = field(results, "timing");
  std::string seeds;
  for (const json& s : field(results, "seeds")) seeds += (seeds.empty() ? "" : ", ") + s.dump();
  std::string html = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  html += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  html += "<meta name=\"generator\" content=\"difftx study\">\n";
  html += fmt::format("<title>difftx study: {}</title>\n<style>{}</style>\n</head>\n<body><main>\n",
                      escape_html(study), kStyle);
  html += fmt::format("<h1>difftx study: {}</h1>\n", escape_html(study));
  html += fmt::format(
      "<p class=\"subtitle\">{}\nspec {} (fingerprint {}) | device {} | seeds {} | {} runs | "
      "baseline {}\ntraining {} s and evaluation {} s summed over runs; expected wall time: "
      "{}</p>\n",
      escape_html(results.value("description", std::string())),
      escape_html(field(results, "spec_file").get<std::string>()),
      escape_html(field(results, "fingerprint").get<std::string>()),
      escape_html(field(results, "device").get<std::string>()), escape_html(seeds),
      field(results, "runs").size(), escape_html(field(results, "baseline").get<std::string>()),
      fixed(number(timing, "train_seconds"), 1), fixed(number(timing, "eval_seconds"), 1),
      escape_html(results.value("expected_wall_time", std::string())));
  if (!results.value("complete", true)) {
    html += fmt::format(
        "<p class=\"partial\">Partial: {} of {} runs measured so far (the study was stopped). "
        "Resume it with <code>difftx study --resume</code> for the whole picture.</p>\n",
        field(results, "runs").size(), results.value("planned_runs", 0));
  }
  html += paired_section(results);
  html += summary_section(results);
  html += learning_curve_section(results);
  html += difficulty_section(results);
  html += metric_family_section(results);
  html += scaling_section(results);
  html += runs_section(results);
  html += "<footer>Generated by <code>difftx study</code> from results.json.</footer>\n";
  html += "</main></body>\n</html>\n";
  return html;
}

}  // namespace difftx::study
