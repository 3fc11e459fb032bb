// The evaluation report page (report.h): sections per task built from results.json files.
#include <fmt/format.h>

#include <cmath>
#include <map>
#include <set>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/eval/report.h"
#include "difftx/eval/results.h"
#include "difftx/report/svg_chart.h"

namespace difftx::eval {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using report::escape_html;

constexpr const char* kStyle = R"css(
* { box-sizing: border-box; }
body { margin: 0; background: #f6f6f4; color: #1a1a1a;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1020px; margin: 0 auto; padding: 28px 24px 40px; background: #ffffff; }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #e2e2e2; }
h3 { font-size: 16px; margin: 22px 0 8px; }
.note { color: #555555; font-size: 14px; margin: 6px 0 12px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13.5px; font-variant-numeric: tabular-nums; margin: 8px 0 14px; }
th, td { padding: 5px 9px; border-bottom: 1px solid #e6e6e6; text-align: right; white-space: nowrap; }
th { background: #f1f1ef; font-weight: 600; border-bottom: 2px solid #cfcfcf; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 12px 0 20px; }
figure svg { display: block; max-width: 100%; height: auto; }
figcaption { color: #555555; font-size: 13px; margin-top: 4px; }
.grid { display: flex; flex-wrap: wrap; gap: 14px; }
pre { background: #f4f4f2; padding: 10px 12px; font-size: 12.5px; overflow-x: auto; white-space: pre-wrap; }
.muted { color: #777777; }
)css";

std::string num(const json& v, int decimals = 4) {
  if (!v.is_number()) return "\u2014";
  const double x = v.get<double>();
  if (!std::isfinite(x)) return "\u2014";
  return fmt::format("{:.{}f}", x, decimals);
}

std::string sig(const json& v) {
  if (!v.is_number()) return "\u2014";
  const double x = v.get<double>();
  return std::isfinite(x) ? fmt::format("{:.4g}", x) : "\u2014";
}

struct Doc {
  fs::path file;
  json j;
};

std::string model_color(const std::map<std::string, std::size_t>& colors,
                        const std::string& label) {
  auto it = colors.find(label);
  return report::categorical_color(it == colors.end() ? 0 : it->second);
}

std::string figure(const std::string& svg, const std::string& caption) {
  return "<figure>\n" + svg + "<figcaption>" + escape_html(caption) + "</figcaption>\n</figure>\n";
}

std::string command_note(const Doc& d) {
  return fmt::format("<p class=\"note\">From <code>{}</code> ({} on {}, {:.1f} s).</p>\n",
                     escape_html(d.j.at("command").get<std::string>()),
                     escape_html(d.j.value("backend", "?")), escape_html(d.j.value("device", "?")),
                     d.j.value("wall_seconds", 0.0));
}

// ---------------------------------------------------------------- ppl
std::string ppl_section(const Doc& d, const std::map<std::string, std::size_t>& colors) {
  std::string h = command_note(d);
  h += "<div class=\"table-wrap\"><table "
       "id=\"ppl-table\"><tr><th>model</th><th>tokens</th><th>loss (nats)</th>"
       "<th>perplexity</th><th>bits per byte</th><th>context</th><th>stride</th></tr>\n";
  report::LineChart cum, buckets;
  cum.id = "ppl-cumulative";
  cum.title = "Cumulative average NLL against position";
  cum.x_label = "position in the window (tokens of context)";
  cum.y_label = "mean NLL of positions 0..p (nats)";
  buckets.id = "ppl-buckets";
  buckets.title = "Mean NLL by position bucket";
  buckets.x_label = "position in the window";
  buckets.y_label = "mean NLL (nats)";
  for (const auto& m : d.j.at("models")) {
    const std::string label = m.at("label");
    const json& r = m.at("results");
    h += fmt::format(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
        escape_html(label), r.at("tokens").get<std::uint64_t>(), num(r.at("loss")),
        num(r.at("perplexity"), 2), num(r.at("bits_per_byte")), r.at("context").get<int>(),
        r.at("stride").get<int>());
    report::ChartSeries c{label + " cumulative", label, {}, model_color(colors, label)};
    const auto& cp = r.at("cumulative");
    for (std::size_t i = 0; i < cp.at("position").size(); ++i) {
      c.points.emplace_back(cp["position"][i].get<double>(), cp["mean_nll"][i].get<double>());
    }
    cum.series.push_back(c);
    report::ChartSeries b{label + " buckets", label, {}, model_color(colors, label)};
    b.markers = true;
    const auto& bp = r.at("by_position");
    for (std::size_t i = 0; i < bp.at("start").size(); ++i) {
      if (!bp["mean_nll"][i].is_number()) continue;
      b.points.emplace_back(0.5 * (bp["start"][i].get<double>() + bp["end"][i].get<double>() - 1),
                            bp["mean_nll"][i].get<double>());
    }
    buckets.series.push_back(b);
  }
  h += "</table></div>\n";
  h += figure(
      report::render_line_chart(cum),
      "Each point: the mean NLL of all targets predicted at positions 0..p of their window (the "
      "paper's long-context figure).");
  h += figure(report::render_line_chart(buckets),
              "Mean NLL of the targets in each position bucket.");
  return h;
}

// ---------------------------------------------------------------- outliers
std::string outliers_section(const Doc& d, const std::map<std::string, std::size_t>& colors) {
  std::string h = command_note(d);
  h += "<p class=\"note\">Largest |x| (top-k: the k-th largest) and median over all collected "
       "values, as in "
       "the paper's Table 5 (0.4M tokens there: Transformer logits "
       "318.0/308.2/304.9/284.7/251.5/5.4, DIFF "
       "38.8/38.8/37.3/32.0/27.4/3.3). Medians come from a histogram (within 0.4%).</p>\n";
  h +=
      "<div class=\"table-wrap\"><table id=\"outliers-table\"><tr><th>model</th><th>activation</th>"
      "<th>tokens</th><th>top-1</th><th>top-2</th><th>top-3</th><th>top-10</th><th>top-100</th>"
      "<th>median</th><th>top-1 / median</th></tr>\n";
  report::LineChart chart;
  chart.id = "outliers-layers";
  chart.title = "Largest |attention logit| and |hidden state| per layer";
  chart.x_label = "layer";
  chart.y_label = "top-1 |x|";
  chart.extend_x_to_ticks = true;
  for (const auto& m : d.j.at("models")) {
    const std::string label = m.at("label");
    const json& r = m.at("results");
    for (const char* kind : {"logits", "hidden"}) {
      const json& s = r.at(kind);
      h += fmt::format(
          "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</"
          "td><td>{}</td>"
          "<td>{}</td><td>{}</td></tr>\n",
          escape_html(label), std::string(kind) == "logits" ? "attention logits" : "hidden states",
          r.at("tokens").get<std::uint64_t>(), num(s.at("top1"), 2), num(s.at("top2"), 2),
          num(s.at("top3"), 2), num(s.at("top10"), 2), num(s.at("top100"), 2),
          num(s.at("median"), 3), num(s.at("top1_over_median"), 1));
    }
    report::ChartSeries lg{
        label + " logits top1", label + " (logits)", {}, model_color(colors, label)};
    report::ChartSeries hd{label + " hidden top1",
                           label + " (hidden)",
                           {},
                           model_color(colors, label),
                           report::LineStyle::dashed};
    lg.markers = hd.markers = true;
    for (const auto& pl : r.at("per_layer")) {
      if (pl["logits"]["top1"].is_number())
        lg.points.emplace_back(pl["layer"].get<double>(), pl["logits"]["top1"].get<double>());
      if (pl["hidden"]["top1"].is_number())
        hd.points.emplace_back(pl["layer"].get<double>(), pl["hidden"]["top1"].get<double>());
    }
    chart.series.push_back(lg);
    chart.series.push_back(hd);
  }
  h += "</table></div>\n";
  h += figure(report::render_line_chart(chart), "Solid: attention logits; dashed: hidden states.");
  return h;
}

// ---------------------------------------------------------------- quant-logits
std::string quant_section(const Doc& d, const std::map<std::string, std::size_t>& colors) {
  std::string h = command_note(d);
  report::LineChart loss, kl, needle;
  loss.id = "quant-loss";
  loss.title = "Loss with quantized attention logits";
  loss.x_label = "bits (16 = unquantized)";
  loss.y_label = "loss (nats)";
  kl.id = "quant-kl";
  kl.title = "KL divergence to the unquantized model";
  kl.x_label = "bits";
  kl.y_label = "KL (nats per token)";
  needle.id = "quant-needle";
  needle.title = "Needle retrieval accuracy with quantized attention logits";
  needle.x_label = "bits";
  needle.y_label = "accuracy";
  needle.y_min = 0;
  needle.y_max = 1;
  h += "<div class=\"table-wrap\"><table "
       "id=\"quant-table\"><tr><th>model</th><th>granularity</th><th>bits</th>"
       "<th>loss</th><th>\u0394 loss</th><th>perplexity</th><th>KL</th></tr>\n";
  bool any_needle = false;
  for (const auto& m : d.j.at("models")) {
    const std::string label = m.at("label");
    const json& r = m.at("results");
    report::ChartSeries ls{label + " loss", label, {}, model_color(colors, label)};
    report::ChartSeries ks{label + " kl", label, {}, model_color(colors, label)};
    ls.markers = ks.markers = true;
    for (const auto& p : r.at("points")) {
      h += fmt::format(
          "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></"
          "tr>\n",
          escape_html(label), escape_html(r.at("granularity").get<std::string>()),
          p.at("bits").get<int>(), num(p.at("loss")), num(p.at("delta_loss")),
          num(p.at("perplexity"), 2), sig(p.at("kl")));
      ls.points.emplace_back(p["bits"].get<double>(), p["loss"].get<double>());
      ks.points.emplace_back(p["bits"].get<double>(), p["kl"].get<double>());
    }
    loss.series.push_back(ls);
    kl.series.push_back(ks);
    if (r.contains("needle")) {
      any_needle = true;
      report::ChartSeries ns{label + " needle", label, {}, model_color(colors, label)};
      ns.markers = true;
      for (const auto& p : r["needle"])
        ns.points.emplace_back(p["bits"].get<double>(), p["accuracy"].get<double>());
      needle.series.push_back(ns);
    }
  }
  h += "</table></div>\n<div class=\"grid\">\n";
  h += figure(report::render_line_chart(loss),
              "Loss of the model whose attention logits are quantized to b bits.");
  h += figure(report::render_line_chart(kl),
              "Mean KL(unquantized || quantized) of the next-token distributions.");
  if (any_needle)
    h += figure(report::render_line_chart(needle), "Needle accuracy (all cells) at each width.");
  h += "</div>\n";
  return h;
}

// ---------------------------------------------------------------- needle
std::string needle_section(const Doc& d, const std::map<std::string, std::size_t>& colors) {
  std::string h = command_note(d);
  h += "<p class=\"note\">Accuracy: fraction of the queried needles whose number the model "
       "completes exactly "
       "(greedy). Paper (4K, DIFF vs Transformer): (1,1) 1.00 vs 1.00; (2,2) 0.92 vs 0.85; (4,2) "
       "0.84 vs 0.62; "
       "(6,2) 0.85 vs 0.55.</p>\n";
  h += "<div class=\"table-wrap\"><table "
       "id=\"needle-table\"><tr><th>model</th><th>N</th><th>R</th><th>accuracy</th></tr>\n";
  std::string grids = "<div class=\"grid\">\n";
  std::string alloc_table =
      "<div class=\"table-wrap\"><table "
      "id=\"allocation-table\"><tr><th>model</th><th>N:R</th><th>depth</th>"
      "<th>answer</th><th>other needles</th><th>noise</th><th>sink (EOS)</th><th>query</th></tr>\n";
  report::LineChart alloc;
  alloc.id = "needle-allocation";
  alloc.title = "Attention allocation on the answer needle and on the noise";
  alloc.x_label = "answer depth (%)";
  alloc.y_label = "share of attention";
  alloc.y_min = 0;
  bool any_alloc = false;
  for (const auto& m : d.j.at("models")) {
    const std::string label = m.at("label");
    const json& r = m.at("results");
    for (const auto& c : r.at("by_config")) {
      h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                       escape_html(label), c.at("needles").get<int>(), c.at("queried").get<int>(),
                       num(c.at("accuracy"), 3));
      grids += "<figure>\n" +
               render_needle_heatmap(label, c["needles"], c["queried"], r.at("cells")) +
               "</figure>\n";
    }
    if (r.contains("allocation")) {
      any_alloc = true;
      std::map<std::string, report::ChartSeries> answer, noise;
      for (const auto& a : r["allocation"]) {
        alloc_table += fmt::format(
            "<tr><td>{}</td><td>{}:{}</td><td>{}%</td><td>{}</td><td>{}</td><td>{}</td><td>{}</"
            "td><td>{}</td></tr>\n",
            escape_html(label), a["needles"].get<int>(), a["queried"].get<int>(),
            a["depth"].get<int>(), num(a["answer"], 3), num(a["other_needles"], 3),
            num(a["noise"], 3), num(a["sink"], 3), num(a["query"], 3));
        const std::string cfg =
            fmt::format("{}:{}", a["needles"].get<int>(), a["queried"].get<int>());
        auto& sa = answer[cfg];
        sa.id = label + " " + cfg + " answer";
        sa.label = label + " N:R=" + cfg + " answer";
        sa.color = model_color(colors, label);
        sa.markers = true;
        sa.points.emplace_back(a["depth"].get<double>(), a["answer"].get<double>());
        auto& sn = noise[cfg];
        sn.id = label + " " + cfg + " noise";
        sn.label = label + " N:R=" + cfg + " noise";
        sn.color = model_color(colors, label);
        sn.style = report::LineStyle::dashed;
        sn.markers = true;
        sn.points.emplace_back(a["depth"].get<double>(), a["noise"].get<double>());
      }
      for (auto& [k, s] : answer) alloc.series.push_back(s);
      for (auto& [k, s] : noise) alloc.series.push_back(s);
    }
  }
  h += "</table></div>\n" + grids + "</div>\n";
  if (any_alloc) {
    h += "<h3>Attention allocation (Table 3)</h3>\n<p class=\"note\">At the positions that predict "
         "the answer, "
         "each head's attention row (DIFF V1: A1 \u2212 \u03bbA2; V2: A1 \u2212 \u03c3(gate)A2) is "
         "normalised by the "
         "sum of its absolute values; shares are averaged over heads, layers, answer positions and "
         "samples. Paper "
         "(answer / noise at 0-100% depth): Transformer 0.03\u20130.09 / 0.49\u20130.54, DIFF "
         "0.27\u20130.40 / "
         "0.01\u20130.02.</p>\n";
    h += alloc_table + "</table></div>\n";
    h += figure(report::render_line_chart(alloc),
                "Solid: share on the answer needle; dashed: share on the haystack noise.");
  }
  return h;
}

// ---------------------------------------------------------------- icl
std::string icl_section(const Doc& d, const std::map<std::string, std::size_t>& colors) {
  std::string h = command_note(d);
  if (d.j.contains("data") && d.j["data"].contains("task")) {
    h +=
        "<p class=\"note\">Task: " + escape_html(d.j["data"]["task"].get<std::string>()) + "</p>\n";
  }
  report::LineChart chart;
  chart.id = "icl-accuracy";
  chart.title = "In-context classification accuracy against demonstrations";
  chart.x_label = "demonstrations";
  chart.y_label = "accuracy";
  chart.y_min = 0;
  chart.y_max = 1;
  h += "<div class=\"table-wrap\"><table id=\"icl-table\"><tr><th>model</th><th>demonstrations</th>"
       "<th>orders</th><th>mean accuracy</th><th>std</th><th>best \u2212 worst</th><th>prompt "
       "tokens</th></tr>\n";
  for (const auto& m : d.j.at("models")) {
    const std::string label = m.at("label");
    const json& r = m.at("results");
    report::ChartSeries mean{label + " mean", label + " (mean)", {}, model_color(colors, label)};
    report::ChartSeries lo{label + " worst",
                           label + " (worst order)",
                           {},
                           model_color(colors, label),
                           report::LineStyle::dotted};
    report::ChartSeries hi{label + " best",
                           label + " (best order)",
                           {},
                           model_color(colors, label),
                           report::LineStyle::dotted};
    mean.markers = true;
    for (const auto& p : r.at("points")) {
      if (p.contains("skipped")) {
        h += fmt::format(
            "<tr><td>{}</td><td>{}</td><td colspan=\"5\" class=\"muted\">skipped: {}</td></tr>\n",
            escape_html(label), p["shots"].get<int>(),
            escape_html(p["skipped"].get<std::string>()));
        continue;
      }
      const auto& acc = p.at("accuracies");
      h += fmt::format(
          "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></"
          "tr>\n",
          escape_html(label), p["shots"].get<int>(), acc.size(), num(p["mean"], 3),
          num(p["std"], 3), num(p["best_minus_worst"], 3), p["prompt_tokens"].get<int>());
      const double x = p["shots"].get<double>();
      mean.points.emplace_back(x, p["mean"].get<double>());
      double a = 1, b = 0;
      for (const auto& v : acc) {
        a = std::min(a, v.get<double>());
        b = std::max(b, v.get<double>());
      }
      lo.points.emplace_back(x, a);
      hi.points.emplace_back(x, b);
    }
    chart.series.push_back(mean);
    chart.series.push_back(lo);
    chart.series.push_back(hi);
  }
  h += "</table></div>\n";
  h += figure(report::render_line_chart(chart),
              "Solid: mean accuracy over demonstration orders; dotted: best and worst order.");
  return h;
}

// ---------------------------------------------------------------- attention-map
std::string map_section(const Doc& d) {
  std::string h = command_note(d);
  for (const auto& m : d.j.at("models")) {
    const json& r = m.at("results");
    h += fmt::format(
        "<h3>{}</h3>\n<p class=\"note\">Prompt: {} ({} tokens)</p>\n<div class=\"grid\">\n",
        escape_html(m.at("label").get<std::string>()),
        escape_html(r.at("prompt").get<std::string>()), r.at("tokens").size());
    for (const auto& img : r.at("images")) {
      const fs::path svg = d.file.parent_path() / img.at("svg").get<std::string>();
      std::error_code ec;
      if (!fs::exists(svg, ec)) {
        fail("{}: the picture {} it lists is missing; rerun the attention-map task",
             d.file.string(), svg.string());
      }
      std::string text = read_file_text(svg);
      const std::string marker = "<svg ";
      const auto at = text.find(marker);
      if (at != std::string::npos) {
        text.insert(
            at + marker.size(),
            fmt::format("data-map=\"{} {}\" ", escape_html(m.at("label").get<std::string>()),
                        escape_html(img.at("name").get<std::string>())));
      }
      h += "<figure>\n" + text + "</figure>\n";
    }
    h += "</div>\n";
  }
  return h;
}

const std::map<std::string, std::string>& section_titles() {
  static const std::map<std::string, std::string> t = {
      {"ppl", "Language modelling: loss and NLL by position"},
      {"outliers", "Activation outliers (Table 5)"},
      {"quant-logits", "Quantized attention logits (Fig. 8)"},
      {"needle", "Multi-needle retrieval (Tables 2 and 3)"},
      {"icl", "Many-shot in-context learning"},
      {"attention-map", "Attention maps"}};
  return t;
}

}  // namespace

std::string render_eval_report(const fs::path& dir) {
  std::vector<Doc> docs;
  for (const auto& f : find_results(dir)) docs.push_back({f, read_results(f)});
  if (docs.empty())
    fail("'{}' holds no results.json: run `difftx eval TASK --out {}` first", dir.string(),
         dir.string());
  // models: union over all results, colors by first appearance
  std::map<std::string, std::size_t> colors;
  std::vector<json> models;
  for (const auto& d : docs) {
    for (const auto& m : d.j["models"]) {
      const std::string label = m["label"];
      if (colors.emplace(label, colors.size()).second) models.push_back(m);
    }
  }
  std::string body;
  body +=
      "<h2 id=\"models\">Models</h2>\n<div class=\"table-wrap\"><table "
      "id=\"models-table\"><tr><th>model</th>"
      "<th>attention</th><th>parameters</th><th>step</th><th>checkpoint</th></tr>\n";
  for (const auto& m : models) {
    body += fmt::format(
        "<tr><td><span style=\"color:{}\">\u25a0</span> "
        "{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
        model_color(colors, m["label"]), escape_html(m["label"].get<std::string>()),
        escape_html(m.value("attention", "?")), m.value("parameters", 0), m.value("step", 0),
        escape_html(m.value("checkpoint", "")));
  }
  body += "</table></div>\n";
  std::string commands;
  for (const auto& task : task_names()) {
    bool first = true;
    for (const auto& d : docs) {
      if (d.j["task"] != task) continue;
      if (first)
        body +=
            fmt::format("<h2 id=\"{}\">{}</h2>\n", task, escape_html(section_titles().at(task)));
      first = false;
      try {
        if (task == "ppl") body += ppl_section(d, colors);
        if (task == "outliers") body += outliers_section(d, colors);
        if (task == "quant-logits") body += quant_section(d, colors);
        if (task == "needle") body += needle_section(d, colors);
        if (task == "icl") body += icl_section(d, colors);
        if (task == "attention-map") body += map_section(d);
      } catch (const json::exception& e) {
        fail("{}: a field of the {} results is missing or has the wrong type ({}); rerun the task",
             d.file.string(), task, e.what());
      }
      commands += escape_html(d.j["command"].get<std::string>()) + "\n";
    }
  }
  body +=
      "<h2 id=\"commands\">Commands</h2>\n<p class=\"note\">The runs this report was made from, "
      "then the report "
      "itself.</p>\n<pre id=\"commands-list\">" +
      commands + escape_html("difftx eval report " + dir.string()) + "\n</pre>\n";
  std::string page =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "<title>difftx eval report</title>\n<style>" +
      std::string(kStyle) + "</style>\n</head>\n<body>\n<main>\n<h1>difftx eval report</h1>\n";
  page += fmt::format("<p class=\"note\">{} result file(s) under {}; {} model(s).</p>\n",
                      docs.size(), escape_html(dir.string()), models.size());
  page += body + "</main>\n</body>\n</html>\n";
  return page;
}

int write_eval_report(const fs::path& dir, const fs::path& out) {
  const std::string html = render_eval_report(dir);
  write_file_atomic(out, html);
  return int(find_results(dir).size());
}

}  // namespace difftx::eval
