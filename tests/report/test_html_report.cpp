// Tests of the SVG chart module and the compare report, including a headless-Chromium render.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/report/html_report.h"
#include "difftx/report/svg_chart.h"

namespace difftx::report {
namespace {
namespace fs = std::filesystem;

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// The `d` attribute of the path with data-series="<id>" (first one), or "" if none.
// (A plain search: libstdc++'s recursive regex overflowed the stack on long paths under ASan.)
std::string path_d(const std::string& svg, const std::string& id) {
  const std::string head = "<path data-series=\"" + id + "\" d=\"";
  const std::size_t at = svg.find(head);
  if (at == std::string::npos) return {};
  const std::size_t begin = at + head.size(), end = svg.find('"', begin);
  return end == std::string::npos ? std::string() : svg.substr(begin, end - begin);
}

// A fresh temporary folder, removed with its contents at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "difftx-report-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Realistic-looking synthetic curves: DIFF V1 against its matched softmax baseline.
CompareReport synthetic_report() {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0.0, 1.0);
  auto loss = [](double step, double offset) {
    return 3.05 + offset * step / 2000.0 + 7.7 * std::exp(-step / 180.0) +
           0.75 * std::exp(-step / 1200.0);
  };
  CompareReport r;
  r.title = "DIFF V1 vs softmax baseline — tiny-shakespeare";
  r.subtitle =
      "configs/diff_v1_small.json · 6 layers, d_model 384 · corpus "
      "data/tinyshakespeare.txt\n2025-01-01";
  const std::vector<std::pair<std::string, std::string>> models = {{"DIFF V1", "diff_v1"},
                                                                   {"softmax baseline", "softmax"}};
  for (std::size_t m = 0; m < models.size(); ++m) {
    RunSeries run;
    run.label = models[m].first;
    run.attention = models[m].second;
    run.params = m == 0 ? 10'745'472 : 10'744'704;
    const double offset = m == 0 ? -0.06 : 0.0;
    for (int step = 0; step <= 2000; step += 5) {
      run.train_loss.emplace_back(step, loss(step, offset) + 0.05 * noise(rng));
    }
    for (int step = 0; step <= 2000; step += 200)
      run.val_loss.emplace_back(step, loss(step, offset) + 0.04);
    run.final_val_loss = run.val_loss.back().second;
    run.tokens_per_second = m == 0 ? 41'230.5 : 47'910.2;
    if (run.attention == "diff_v1") {
      for (int layer = 0; layer < 6; ++layer) {
        const double init = 0.8 - 0.6 * std::exp(-0.3 * layer);
        std::vector<std::pair<double, double>> curve;
        for (int step = 0; step <= 2000; step += 20) {
          double drift = (0.15 - 0.05 * layer) * (1 - std::exp(-step / 600.0));
          curve.emplace_back(step, init + drift + 0.004 * noise(rng));
        }
        run.lambda_per_layer.push_back(std::move(curve));
      }
    }
    r.runs.push_back(std::move(run));
  }
  return r;
}

// ---------------------------------------------------------------- ticks, labels, escaping

TEST(NiceTicks, KnownRanges) {
  auto t = nice_ticks(0, 10, 6);
  EXPECT_DOUBLE_EQ(t.step, 2);
  EXPECT_EQ(t.values, (std::vector<double>{0, 2, 4, 6, 8, 10}));
  t = nice_ticks(0.13, 0.87, 5);
  EXPECT_DOUBLE_EQ(t.step, 0.2);
  EXPECT_DOUBLE_EQ(t.lo, 0.0);
  EXPECT_DOUBLE_EQ(t.hi, 1.0);
  EXPECT_EQ(t.values.size(), 6u);
  t = nice_ticks(2.95, 3.41, 6);
  EXPECT_DOUBLE_EQ(t.step, 0.1);
  EXPECT_NEAR(t.lo, 2.9, 1e-12);
  EXPECT_NEAR(t.hi, 3.5, 1e-12);
  EXPECT_EQ(t.values.size(), 7u);
  t = nice_ticks(0, 2037, 6);
  EXPECT_DOUBLE_EQ(t.step, 500);
  EXPECT_DOUBLE_EQ(t.hi, 2500);
  t = nice_ticks(-0.37, 0.81, 6);
  EXPECT_DOUBLE_EQ(t.step, 0.2);
  EXPECT_NEAR(t.lo, -0.4, 1e-12);
  EXPECT_NEAR(t.hi, 1.0, 1e-12);
  EXPECT_EQ(std::count(t.values.begin(), t.values.end(), 0.0), 1);  // an exact 0 tick
  // Bounds already on a tick stay there (no extra tick from rounding).
  t = nice_ticks(0.3, 0.9, 4);
  EXPECT_DOUBLE_EQ(t.step, 0.2);
  EXPECT_NEAR(t.lo, 0.2, 1e-12);
  EXPECT_NEAR(t.hi, 1.0, 1e-12);
  t = nice_ticks(100, 200, 6);
  EXPECT_EQ(t.values, (std::vector<double>{100, 120, 140, 160, 180, 200}));
}

TEST(NiceTicks, PropertiesOnRandomRanges) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> exponent(-6, 7), unit(-1, 1);
  for (int trial = 0; trial < 2000; ++trial) {
    double scale = std::pow(10.0, exponent(rng));
    double a = unit(rng) * scale, b = unit(rng) * scale;
    double lo = std::min(a, b), hi = std::max(a, b);
    if (lo == hi) continue;
    int target = 3 + trial % 8;
    auto t = nice_ticks(lo, hi, target);
    // step is 1, 2 or 5 times a power of ten
    double mantissa = t.step / std::pow(10.0, std::floor(std::log10(t.step) + 1e-12));
    EXPECT_TRUE(std::abs(mantissa - 1) < 1e-9 || std::abs(mantissa - 2) < 1e-9 ||
                std::abs(mantissa - 5) < 1e-9)
        << "step " << t.step;
    EXPECT_LE(t.lo, lo + 1e-9 * t.step);
    EXPECT_GE(t.hi, hi - 1e-9 * t.step);
    EXPECT_GE(t.values.size(), 2u);
    EXPECT_LE(static_cast<int>(t.values.size()), 2 * target + 1)
        << lo << " " << hi << " target " << target;
    for (std::size_t i = 0; i < t.values.size(); ++i) {
      double k = t.values[i] / t.step;
      EXPECT_NEAR(k, std::round(k), 1e-6)
          << "tick " << t.values[i] << " not a multiple of " << t.step;
      if (i > 0) {
        EXPECT_NEAR(t.values[i] - t.values[i - 1], t.step,
                    1e-9 * t.step + 1e-12 * std::abs(t.values[i]));
      }
    }
    EXPECT_DOUBLE_EQ(t.values.front(), t.lo);
    EXPECT_DOUBLE_EQ(t.values.back(), t.hi);
  }
}

TEST(NiceTicks, DegenerateAndInvalidRanges) {
  auto t = nice_ticks(0, 0);
  EXPECT_DOUBLE_EQ(t.lo, 0);
  EXPECT_DOUBLE_EQ(t.hi, 1);
  t = nice_ticks(3.2, 3.2);
  EXPECT_LE(t.lo, 3.2 * 0.9 + 1e-12);
  EXPECT_GE(t.hi, 3.2 * 1.1 - 1e-12);
  EXPECT_GE(t.values.size(), 3u);
  t = nice_ticks(-5, -5);
  EXPECT_LT(t.lo, -5);
  EXPECT_GT(t.hi, -5);
  EXPECT_THROW(nice_ticks(std::nan(""), 1), Error);
  EXPECT_THROW(nice_ticks(0, INFINITY), Error);
  EXPECT_THROW(nice_ticks(2, 1), Error);
}

TEST(FormatTick, DecimalsFollowTheStep) {
  EXPECT_EQ(format_tick(0.2, 0.2), "0.2");
  EXPECT_EQ(format_tick(3.0, 0.1), "3.0");
  EXPECT_EQ(format_tick(3.0000000000000004, 0.1), "3.0");
  EXPECT_EQ(format_tick(3.05, 0.05), "3.05");
  EXPECT_EQ(format_tick(2.5, 0.5), "2.5");
  EXPECT_EQ(format_tick(6, 2), "6");
  EXPECT_EQ(format_tick(2000, 500), "2000");
  EXPECT_EQ(format_tick(4000, 2000), "4k");
  EXPECT_EQ(format_tick(12000, 2000), "12k");
  EXPECT_EQ(format_tick(1500000, 500000), "1500k");
  EXPECT_EQ(format_tick(3000000, 1000000), "3M");
  EXPECT_EQ(format_tick(-0.4, 0.2), "-0.4");
  EXPECT_EQ(format_tick(-1e-17, 0.2), "0");  // k * step rounding noise around zero
  EXPECT_EQ(format_tick(-0.0, 1), "0");
  EXPECT_EQ(format_tick(0, 2000), "0");
  EXPECT_EQ(format_tick(2e-5, 1e-5), "2e-05");
}

TEST(EscapeHtml, EscapesEveryMarkupCharacter) {
  EXPECT_EQ(escape_html("<script>alert(\"x\" & 'y')</script>"),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;");
  EXPECT_EQ(escape_html("plain λ text"), "plain λ text");
  EXPECT_EQ(escape_html(""), "");
  EXPECT_EQ(escape_html("&amp;"), "&amp;amp;");
}

TEST(Palette, ColorsAreDistinctHexCodes) {
  std::regex hex("#[0-9A-F]{6}");
  std::vector<std::string> seen;
  for (std::size_t i = 0; i < 8; ++i) {
    auto c = categorical_color(i);
    EXPECT_TRUE(std::regex_match(c, hex)) << c;
    EXPECT_EQ(std::count(seen.begin(), seen.end(), c), 0) << c;
    seen.push_back(c);
  }
  EXPECT_EQ(categorical_color(8), categorical_color(0));
  EXPECT_EQ(sequential_color(0), "#440154");
  EXPECT_EQ(sequential_color(1), "#FDE725");
  EXPECT_EQ(sequential_color(-3), "#440154");
  EXPECT_TRUE(std::regex_match(sequential_color(0.37), hex));
  EXPECT_NE(sequential_color(0.3), sequential_color(0.6));
}

// ---------------------------------------------------------------- charts

TEST(LineChart, SeriesPathsAxesAndLegend) {
  LineChart c;
  c.id = "t";
  c.title = "Loss <train>";
  c.x_label = "step";
  c.y_label = "loss";
  c.series.push_back({"a train",
                      "A",
                      {{0, 4.0}, {50, 3.5}, {100, 3.0}},
                      "#0072B2",
                      LineStyle::solid,
                      2,
                      1,
                      false});
  c.series.push_back(
      {"b val", "B", {{0, 4.2}, {100, 3.1}}, "#D55E00", LineStyle::dashed, 2, 1, true});
  std::string svg = render_line_chart(c);
  EXPECT_EQ(count_of(svg, "<svg"), 1u);
  EXPECT_EQ(count_of(svg, "</svg>"), 1u);
  EXPECT_TRUE(contains(svg, "Loss &lt;train&gt;"));
  EXPECT_FALSE(contains(svg, "<train>"));
  std::string da = path_d(svg, "a train"), db = path_d(svg, "b val");
  EXPECT_EQ(count_of(da, "M"), 1u);
  EXPECT_EQ(count_of(da, "L"), 2u);
  EXPECT_EQ(count_of(db, "L"), 1u);
  EXPECT_TRUE(contains(svg, "stroke-dasharray"));
  EXPECT_TRUE(contains(svg, "data-series-markers=\"b val\""));
  EXPECT_FALSE(contains(svg, "data-series-markers=\"a train\""));
  EXPECT_TRUE(contains(svg, ">step</text>"));
  EXPECT_TRUE(contains(svg, ">loss</text>"));
  EXPECT_TRUE(contains(svg, ">3.0</text>"));  // a y tick label
  EXPECT_TRUE(contains(svg, ">100</text>"));  // the last x tick
  EXPECT_TRUE(contains(svg, ">A</text>"));    // legend entries
  EXPECT_TRUE(contains(svg, ">B</text>"));
  EXPECT_TRUE(contains(svg, "clip-path=\"url(#t-clip)\""));
}

TEST(LineChart, PointsMapIntoThePlotArea) {
  LineChart c;
  c.width = 600;
  c.height = 300;
  c.series.push_back({"s", "s", {{0, 0}, {10, 1}}, "#000000", LineStyle::solid, 2, 1, false});
  std::string d = path_d(render_line_chart(c), "s");
  // The x domain is the data range; y extends to ticks, here exactly [0, 1]. Margins: left
  // 72, right 24, top 40, bottom 52.
  EXPECT_EQ(d, "M72.0 248.0 L576.0 40.0");
}

TEST(LineChart, EmptySinglePointAndNonFiniteSeries) {
  LineChart c;
  c.id = "e";
  c.series.push_back({"empty", "nothing", {}, "#000000", LineStyle::solid, 2, 1, false});
  c.series.push_back({"one", "single", {{5, 2.0}}, "#0072B2", LineStyle::solid, 2, 1, false});
  c.series.push_back({"gap",
                      "gappy",
                      {{0, 1.0}, {1, NAN}, {2, 1.5}, {3, INFINITY}, {4, 1.2}},
                      "#D55E00",
                      LineStyle::solid,
                      2,
                      1,
                      false});
  std::string svg = render_line_chart(c);
  EXPECT_FALSE(contains(svg, "data-series=\"empty\""));
  EXPECT_TRUE(contains(svg, "nothing (no data)"));
  EXPECT_TRUE(contains(svg, "data-series=\"one\""));
  EXPECT_TRUE(contains(svg, "data-series-markers=\"one\""));  // a one-point path draws nothing
  EXPECT_EQ(count_of(path_d(svg, "gap"), "M"), 3u);           // the line breaks at NaN and inf
  EXPECT_FALSE(contains(svg, "nan"));
  EXPECT_FALSE(contains(svg, "inf"));
  EXPECT_FALSE(contains(svg, "no data</text>"));

  LineChart none;
  none.series.push_back({"x", "x", {{1, NAN}}, "#000000", LineStyle::solid, 2, 1, false});
  std::string empty_svg = render_line_chart(none);
  EXPECT_TRUE(contains(empty_svg, ">no data</text>"));
  EXPECT_FALSE(contains(empty_svg, "nan"));
  EXPECT_TRUE(contains(render_line_chart(LineChart{}), ">no data</text>"));

  LineChart single;  // one point total: both axes degenerate
  single.series.push_back({"p", "p", {{0, 0}}, "#000000", LineStyle::solid, 2, 1, false});
  std::string s = render_line_chart(single);
  EXPECT_TRUE(contains(s, "<circle"));
  EXPECT_FALSE(contains(s, "nan"));
}

TEST(LineChart, LongSeriesAreThinnedButKeepTheEnvelope) {
  LineChart c;
  ChartSeries s{"long", "long", {}, "#000000", LineStyle::solid, 1, 1, false};
  for (int i = 0; i < 100000; ++i) s.points.emplace_back(i, i == 54321 ? 10.0 : std::sin(i * 0.01));
  c.series.push_back(s);
  std::string svg = render_line_chart(c);
  EXPECT_LT(svg.size(), 120000u);
  std::string d = path_d(svg, "long");
  EXPECT_LT(count_of(d, "L"), 4u * 880u);
  EXPECT_GT(count_of(d, "L"), 780u);
  // The spike at 54321 survives thinning: some point reaches the top of the plot area (y=40).
  EXPECT_TRUE(contains(d, " 40.0")) << "spike lost";
}

TEST(LineChart, FixedDomainClipsAndFitsTheOtherAxis) {
  LineChart c;
  c.x_min = 50;
  c.series.push_back(
      {"s", "s", {{0, 100.0}, {50, 3.0}, {100, 2.0}}, "#000000", LineStyle::solid, 2, 1, false});
  std::string svg = render_line_chart(c);
  // y fitted to the points with x >= 50 only: ticks 2.0, 2.2, ... 3.0 (x ticks: 50 ... 100),
  // not the 0 ... 100 by 20 that the point at x = 0 would need.
  EXPECT_TRUE(contains(svg, ">2.0</text>"));
  EXPECT_TRUE(contains(svg, ">2.4</text>"));
  EXPECT_TRUE(contains(svg, ">3.0</text>"));
  EXPECT_TRUE(contains(svg, ">50</text>"));
  EXPECT_FALSE(contains(svg, ">20</text>"));
  EXPECT_FALSE(contains(svg, ">40</text>"));
}

// ---------------------------------------------------------------- the compare report

TEST(CompareReport, ContainsSummaryAndBothRunsCurves) {
  const auto report = synthetic_report();
  const std::string html = render_compare_report(report);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_FALSE(contains(html, "<script"));
  // No network references: the only URL is the SVG namespace name of each <svg>.
  EXPECT_EQ(count_of(html, "http://"), count_of(html, "xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_FALSE(contains(html, "https://"));
  for (const auto& run : report.runs) {
    EXPECT_FALSE(path_d(html, run.label + " train").empty()) << run.label;
    EXPECT_FALSE(path_d(html, run.label + " val").empty()) << run.label;
    EXPECT_FALSE(path_d(html, run.label + " train (smoothed)").empty()) << run.label;
  }
  for (int layer = 0; layer < 6; ++layer) {
    EXPECT_FALSE(path_d(html, "DIFF V1 lambda layer " + std::to_string(layer)).empty()) << layer;
  }
  EXPECT_FALSE(contains(html, "softmax baseline lambda"));
  EXPECT_EQ(count_of(html, "<svg"), 3u);  // loss, zoomed loss, lambda
  EXPECT_EQ(count_of(html, "<svg"), count_of(html, "</svg>"));

  // Summary table: values, perplexity = exp(loss), difference DIFF - baseline.
  EXPECT_TRUE(contains(html, "id=\"summary-table\""));
  const double diff = report.runs[0].final_val_loss, base = report.runs[1].final_val_loss;
  EXPECT_TRUE(contains(html, fmt::format("<td>{:.4f}</td>", diff)));
  EXPECT_TRUE(contains(html, fmt::format("<td>{:.4f}</td>", base)));
  EXPECT_TRUE(contains(html, fmt::format("<td>{:.2f}</td>", std::exp(diff))));
  EXPECT_TRUE(contains(html, fmt::format("<td>{:.2f}</td>", std::exp(base))));
  ASSERT_LT(diff, base);
  EXPECT_TRUE(contains(html, fmt::format("<td class=\"better\">\u2212{:.4f}</td>", base - diff)));
  EXPECT_TRUE(contains(html, "10,745,472"));
  EXPECT_TRUE(contains(html, "41,231"));  // tokens/s, rounded
  EXPECT_TRUE(contains(html, fmt::format("&#215;{:.2f}", 41230.5 / 47910.2)));
  EXPECT_TRUE(contains(html, "<td class=\"muted\">baseline</td>"));
  // Subtitle and title escaped, line break kept by CSS.
  EXPECT_TRUE(contains(html, "<h1>DIFF V1 vs softmax baseline — tiny-shakespeare</h1>"));
  EXPECT_TRUE(contains(html, "white-space: pre-line"));
  EXPECT_EQ(html, render_compare_report(report));  // deterministic
}

TEST(CompareReport, EscapesUserText) {
  auto report = synthetic_report();
  report.title = "<b>bold</b> & \"quoted\"";
  report.runs[0].label = "DIFF <v1>";
  report.runs[0].attention = "diff_v1'";
  const std::string html = render_compare_report(report);
  EXPECT_FALSE(contains(html, "<b>bold</b>"));
  EXPECT_FALSE(contains(html, "DIFF <v1>"));
  EXPECT_TRUE(contains(html, "&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;"));
  EXPECT_TRUE(contains(html, "data-series=\"DIFF &lt;v1&gt; train\""));
  EXPECT_TRUE(contains(html, "<td>diff_v1&#39;</td>"));
}

TEST(CompareReport, HandlesMissingDataGracefully) {
  CompareReport empty;
  empty.title = "nothing yet";
  std::string html = render_compare_report(empty);
  EXPECT_TRUE(contains(html, "no runs"));
  EXPECT_TRUE(contains(html, "No &#955; curves"));

  CompareReport sparse;
  RunSeries a;
  a.label = "DIFF";
  a.attention = "diff_v2";
  a.train_loss = {{0, 10.5}};
  a.final_val_loss = NAN;
  a.tokens_per_second = NAN;
  RunSeries b;
  b.label = "base";
  b.attention = "softmax";
  b.final_val_loss = 3.5;
  sparse.runs = {a, b};
  html = render_compare_report(sparse);
  EXPECT_FALSE(contains(html, "nan"));
  EXPECT_FALSE(contains(html, "inf<"));
  EXPECT_TRUE(contains(html, "data-series=\"DIFF train\""));
  EXPECT_TRUE(contains(html, "base validation (no data)"));
  EXPECT_TRUE(contains(html, "final validation loss unknown"));
  EXPECT_FALSE(contains(html, "loss-zoom-chart"));  // too few points to zoom

  CompareReport no_baseline;
  no_baseline.runs = {a};
  html = render_compare_report(no_baseline);
  EXPECT_TRUE(contains(html, "No softmax baseline"));
}

TEST(CompareReport, WritesAtomicallyAndCreatesTheFolder) {
  TempDir dir;
  fs::path path = dir.path / "sub" / "compare.html";
  write_compare_report(path, synthetic_report());
  EXPECT_EQ(read_file_text(path), render_compare_report(synthetic_report()));
  for (const auto& entry : fs::directory_iterator(dir.path / "sub")) {
    EXPECT_EQ(entry.path().filename(), "compare.html") << "leftover " << entry.path();
  }
}

// ---------------------------------------------------------------- headless Chromium

constexpr const char* kChromium = "/usr/bin/chromium";

std::string chromium_command(const fs::path& profile, const std::string& args, const fs::path& out,
                             const fs::path& err) {
  return fmt::format(
      "timeout 60 {} --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
      "--disable-background-networking --disable-component-update --disable-sync --hide-scrollbars "
      "--user-data-dir='{}' {} > '{}' 2> '{}'",
      kChromium, profile.string(), args, out.string(), err.string());
}

std::string tail_of(const fs::path& path) {
  std::string text = fs::exists(path) ? read_file_text(path) : "";
  return text.size() > 2000 ? text.substr(text.size() - 2000) : text;
}

// PNG width and height from the IHDR chunk (0, 0 if not a PNG).
std::pair<std::uint32_t, std::uint32_t> png_size(const std::string& bytes) {
  if (bytes.size() < 24 || bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0 ||
      bytes.compare(12, 4, "IHDR") != 0) {
    return {0, 0};
  }
  auto be32 = [&](std::size_t at) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
    return v;
  };
  return {be32(16), be32(20)};
}

TEST(CompareReportChromium, RendersInHeadlessChromium) {
  ASSERT_TRUE(fs::exists(kChromium))
      << kChromium
      << " is missing: run scripts/install-deps.sh (it installs the Debian "
         "'chromium' package, which CI installs too)";
  TempDir dir;
  const fs::path html_path = dir.path / "compare.html";
  const auto report = synthetic_report();
  write_compare_report(html_path, report);

  // 1. The DOM as Chromium parsed it: every curve and the summary table survive parsing.
  const fs::path dom = dir.path / "dom.html", err = dir.path / "chromium.log";
  int rc = std::system(chromium_command(dir.path / "profile-dom",
                                        "--dump-dom 'file://" + html_path.string() + "'", dom, err)
                           .c_str());
  ASSERT_EQ(rc, 0) << "chromium --dump-dom failed (status " << rc << "):\n" << tail_of(err);
  const std::string parsed = read_file_text(dom);
  for (const auto& run : report.runs) {
    for (const char* kind : {" train\"", " val\"", " train (smoothed)\""}) {
      EXPECT_TRUE(contains(parsed, "<path data-series=\"" + run.label + kind)) << run.label << kind;
    }
  }
  EXPECT_TRUE(contains(parsed, "data-series=\"DIFF V1 lambda layer 5\""));
  EXPECT_TRUE(contains(parsed, "<table id=\"summary-table\">"));
  EXPECT_TRUE(contains(parsed, fmt::format("{:.4f}", report.runs[1].final_val_loss)));
  EXPECT_EQ(count_of(parsed, "<svg"), 3u);
  EXPECT_EQ(count_of(parsed, "</tr>"), 3u);  // header + two runs

  // 2. A screenshot: a real, non-trivial image of the requested size.
  const fs::path png = dir.path / "compare.png", err2 = dir.path / "chromium-shot.log";
  rc = std::system(chromium_command(dir.path / "profile-shot",
                                    "--window-size=1200,1600 --screenshot='" + png.string() +
                                        "' 'file://" + html_path.string() + "'",
                                    dir.path / "shot.out", err2)
                       .c_str());
  ASSERT_EQ(rc, 0) << "chromium --screenshot failed (status " << rc << "):\n" << tail_of(err2);
  ASSERT_TRUE(fs::exists(png)) << tail_of(err2);
  const std::string bytes = read_file_text(png);
  EXPECT_GT(bytes.size(), 40u * 1024u) << "screenshot suspiciously small: a blank page?";
  auto [w, h] = png_size(bytes);
  EXPECT_EQ(w, 1200u);
  EXPECT_EQ(h, 1600u);

  // Keep the sample for people to look at: <build>/test-artifacts/report/compare.{html,png}.
  const fs::path keep = fs::path(DIFFTX_BINARY_DIR) / "test-artifacts" / "report";
  std::error_code ec;
  fs::create_directories(keep, ec);
  fs::copy_file(html_path, keep / "compare.html", fs::copy_options::overwrite_existing, ec);
  fs::copy_file(png, keep / "compare.png", fs::copy_options::overwrite_existing, ec);
}

}  // namespace
}  // namespace difftx::report
