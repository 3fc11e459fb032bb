// The training report page: summary sentences and table, the seed caveat, and the chart
// sections of report_charts.h, assembled into one self-contained HTML file.
#include "difftx/report/html_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "difftx/core/atomic_file.h"
#include "difftx/core/number_format.h"
#include "difftx/report/svg_chart.h"
#include "report_charts.h"

namespace difftx::report {
namespace {

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
.caveat { color: #7a4a00; background: #fff6e5; border-left: 3px solid #e69f00; padding: 6px 10px; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 13px; }
.sub { color: #777777; font-size: 12px; }
figure { margin: 14px 0 22px; }
figure svg { display: block; max-width: 100%; height: auto; }
figcaption { color: #555555; font-size: 13px; margin-top: 4px; }
footer { margin-top: 36px; color: #888888; font-size: 12px; }
)css";

bool finite(double x) {
  return std::isfinite(x);
}

// Digits grouped by thousands, with a typographic minus sign.
std::string group_thousands(std::int64_t value) {
  const std::string text = with_thousands(value);
  return value < 0 ? std::string(kMinus) + text.substr(1) : text;
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

std::string loss_text(double loss) {
  return finite(loss) ? fmt::format("{:.4f}", loss) : kDash;
}

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
  return group_thousands(params) + " <span class=\"sub\">(" +
         short_count(static_cast<double>(params)) + ")</span>";
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
const char* delta_class(double delta) {
  return delta < 0 ? "better" : delta > 0 ? "worse" : "muted";
}

std::string summary_sentences(const CompareReport& report, const RunSeries* baseline) {
  if (report.runs.empty()) return "<p class=\"headline\">This report contains no runs.</p>\n";
  if (!baseline) {
    return "<p class=\"headline\">No softmax baseline among the runs: differences are not "
           "shown.</p>\n";
  }
  std::string out;
  for (const auto& run : report.runs) {
    if (&run == baseline) continue;
    if (!finite(run.final_val_loss) || !finite(baseline->final_val_loss)) {
      out += fmt::format(
          "<p class=\"headline\"><strong>{}</strong>: final validation loss unknown, no "
          "comparison with <strong>{}</strong>.</p>\n",
          escape_html(run.label), escape_html(baseline->label));
      continue;
    }
    const double delta = run.final_val_loss - baseline->final_val_loss;
    out += fmt::format(
        "<p class=\"headline\"><strong>{}</strong> reaches a final validation loss of "
        "<strong>{}</strong> "
        "against <strong>{}</strong> for <strong>{}</strong>: <span class=\"{}\">{}</span> nats "
        "per token",
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
                                                    static_cast<double>(baseline->params) -
                                                1.0),
                                       2));
    }
    out += "</p>\n";
  }
  return out;
}

std::string summary_table(const CompareReport& report, const RunSeries* baseline) {
  std::string out =
      "<div class=\"table-wrap\">\n<table "
      "id=\"summary-table\">\n<thead><tr><th>Model</th><th>Attention</th><th>Parameters</th>"
      "<th>Steps</th><th>Final val loss</th><th>Perplexity</th><th>Tokens/s</th>"
      "<th>&#916; val loss<br><span class=\"sub\">vs baseline</span></th>"
      "<th>&#916; perplexity<br><span class=\"sub\">vs baseline</span></th>"
      "<th>Speed<br><span class=\"sub\">vs baseline</span></th></tr></thead>\n<tbody>\n";
  for (std::size_t i = 0; i < report.runs.size(); ++i) {
    const auto& run = report.runs[i];
    auto steps = last_step(run);
    const std::string seed_text =
        run.seed.empty() ? ""
                         : "<br><span class=\"sub\">seed: " + escape_html(run.seed) + "</span>";
    out += fmt::format(
        "<tr><td><span class=\"swatch\" "
        "style=\"background:{}\"></span>{}{}</td><td>{}</td><td>{}</td>"
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
        categorical_color(i), escape_html(run.label), seed_text, escape_html(run.attention),
        params_text(run.params), steps ? group_thousands(std::llround(*steps)) : kDash,
        loss_text(run.final_val_loss), perplexity_text(run.final_val_loss),
        speed_text(run.tokens_per_second));
    if (&run == baseline) {
      out +=
          "<td class=\"muted\">baseline</td><td class=\"muted\">baseline</td><td "
          "class=\"muted\">baseline</td>";
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
      if (finite(run.tokens_per_second) && run.tokens_per_second > 0 &&
          finite(baseline->tokens_per_second) && baseline->tokens_per_second > 0) {
        out += fmt::format("<td>&#215;{:.2f}</td>",
                           run.tokens_per_second / baseline->tokens_per_second);
      } else {
        out += fmt::format("<td>{}</td>", kDash);
      }
    }
    out += "</tr>\n";
  }
  out += "</tbody>\n</table>\n</div>\n";
  return out;
}

// Notes on seeds: the spread of configurations trained with several seeds, and a caveat
// when a comparison of configurations rests on one seed.
std::string seeds_note(const CompareReport& report) {
  std::map<std::string, std::vector<const RunSeries*>> groups;
  std::vector<std::string> order;
  for (const auto& run : report.runs) {
    if (run.configuration.empty()) continue;
    if (!groups.count(run.configuration)) order.push_back(run.configuration);
    groups[run.configuration].push_back(&run);
  }
  if (groups.empty()) return "";
  std::string out;
  std::vector<std::string> single;
  for (const auto& key : order) {
    const auto& runs = groups[key];
    if (runs.size() < 2) {
      single.push_back(runs.front()->label);
      continue;
    }
    double sum = 0, lo = INFINITY, hi = -INFINITY;
    int n = 0;
    for (const RunSeries* r : runs) {
      if (!finite(r->final_val_loss)) continue;
      sum += r->final_val_loss;
      lo = std::min(lo, r->final_val_loss);
      hi = std::max(hi, r->final_val_loss);
      ++n;
    }
    std::string labels;
    for (const RunSeries* r : runs) labels += (labels.empty() ? "" : ", ") + escape_html(r->label);
    if (n >= 2) {
      out += fmt::format(
          "<p class=\"note seeds\">Same configuration, {} seeds ({}): final validation loss "
          "mean {}, range {} to {} ({} nats).</p>\n",
          runs.size(), labels, loss_text(sum / n), loss_text(lo), loss_text(hi),
          fmt::format("{:.4f}", hi - lo));
    } else {
      out += fmt::format("<p class=\"note seeds\">Same configuration, {} seeds ({}).</p>\n",
                         runs.size(), labels);
    }
  }
  if (groups.size() >= 2 && !single.empty()) {
    std::string names;
    for (const auto& l : single) names += (names.empty() ? "" : ", ") + escape_html(l);
    out += fmt::format(
        "<p class=\"note caveat\" id=\"seed-caveat\"><strong>One seed:</strong> {} {} trained with "
        "a single "
        "seed, so the differences above may be seed noise. At small scale the loss gap between "
        "DIFF and a "
        "softmax Transformer is often within the spread over seeds (about 0.02 nats at 30M "
        "parameters in "
        "public replications); train each configuration with several seeds (<code>--set "
        "train.seed=N "
        "--set data.seed=N</code>) and compare their spread before drawing a conclusion.</p>\n",
        names, single.size() == 1 ? "was" : "were");
  }
  return out;
}

}  // namespace

std::string render_compare_report(const CompareReport& report) {
  const RunSeries* baseline = find_baseline(report);
  std::string out;
  out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  out += fmt::format("<meta name=\"generator\" content=\"{}\">\n", escape_html(report.generator));
  out += fmt::format("<title>{}</title>\n<style>{}</style>\n</head>\n<body>\n<main>\n",
                     escape_html(report.title), kStyle);
  out += fmt::format("<header>\n<h1>{}</h1>\n", escape_html(report.title));
  if (!report.subtitle.empty())
    out += fmt::format("<p class=\"subtitle\">{}</p>\n", escape_html(report.subtitle));
  out += "</header>\n<section id=\"summary\">\n<h2>Summary</h2>\n";
  out += summary_sentences(report, baseline);
  out += summary_table(report, baseline);
  out +=
      "<p class=\"note\">Perplexity is exp(validation loss). &#916; columns: this run minus the "
      "softmax baseline (negative = lower loss = better); speed is the ratio of training "
      "tokens per second.</p>\n";
  out += seeds_note(report);
  out += "</section>\n";
  out += detail::loss_section(report);
  out += detail::training_curves_section(report);
  out += detail::lambda_section(report);
  out += fmt::format(
      "<footer>Generated by {}. Self-contained page: no scripts, no network access.</footer>\n",
      escape_html(report.generator));
  out += "</main>\n</body>\n</html>\n";
  return out;
}

void write_compare_report(const std::filesystem::path& path, const CompareReport& report) {
  if (path.has_parent_path()) ensure_writable_directory(path.parent_path());
  write_file_atomic(path, render_compare_report(report));
}

}  // namespace difftx::report
