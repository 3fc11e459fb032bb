// Inline-SVG line charts: nice ticks, tick labels, palettes, thinning and the <svg> markup.
#include "difftx/report/svg_chart.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "difftx/core/error.h"

namespace difftx::report {

std::string escape_html(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

// 1, 2 or 5 times a power of ten, nearest to x (> 0) on a log scale.
double nice_step(double x) {
  double exponent = std::floor(std::log10(x));
  double power = std::pow(10.0, exponent);
  double f = x / power;
  double nice = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
  return nice * power;
}

}  // namespace

AxisTicks nice_ticks(double lo, double hi, int target_count) {
  if (!std::isfinite(lo) || !std::isfinite(hi))
    fail("nice_ticks: axis range [{}, {}] is not finite", lo, hi);
  if (hi < lo) fail("nice_ticks: axis range [{}, {}] is reversed", lo, hi);
  if (hi == lo) {
    if (lo == 0) {
      hi = 1;
    } else {
      double pad = std::abs(lo) * 0.1;
      lo -= pad;
      hi += pad;
    }
  }
  const int n = std::max(target_count, 2);
  AxisTicks t;
  t.step = nice_step((hi - lo) / (n - 1));
  // The 1e-9 slack keeps a bound that is a multiple of step in exact arithmetic on that tick.
  const auto k0 = static_cast<long long>(std::floor(lo / t.step + 1e-9));
  const auto k1 = static_cast<long long>(std::ceil(hi / t.step - 1e-9));
  for (long long k = k0; k <= k1; ++k) {
    double v = static_cast<double>(k) * t.step;
    t.values.push_back(k == 0 ? 0.0 : v);
  }
  t.lo = t.values.front();
  t.hi = t.values.back();
  return t;
}

std::string format_tick(double value, double step) {
  step = std::abs(step);
  if (!(step > 0) || !std::isfinite(step)) return fmt::format("{:g}", value);
  if (std::abs(value) < step * 1e-9) value = 0;
  const char* suffix = "";
  if (step >= 1e6) {
    value /= 1e6;
    step /= 1e6;
    suffix = "M";
  } else if (step >= 1e3) {
    value /= 1e3;
    step /= 1e3;
    suffix = "k";
  } else if (step < 1e-4) {
    return value == 0 ? std::string("0") : fmt::format("{:.3g}", value);
  }
  const int decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  std::string text = fmt::format("{:.{}f}", value, decimals);
  if (text.find_first_not_of("-0.") == std::string::npos)
    return std::string(1, '0');  // no "-0.0", "0k"
  return text + suffix;
}

std::string categorical_color(std::size_t index) {
  static constexpr std::array<const char*, 8> kOkabeIto = {
      "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"};
  return kOkabeIto[index % kOkabeIto.size()];
}

std::string sequential_color(double t) {
  // viridis at t = 0, 1/8, ..., 1
  static constexpr std::array<std::array<int, 3>, 9> kViridis = {{{68, 1, 84},
                                                                  {71, 45, 123},
                                                                  {59, 82, 139},
                                                                  {44, 114, 142},
                                                                  {33, 145, 140},
                                                                  {40, 174, 128},
                                                                  {94, 201, 98},
                                                                  {173, 220, 48},
                                                                  {253, 231, 37}}};
  if (!std::isfinite(t)) t = 0;
  t = std::clamp(t, 0.0, 1.0) * 8.0;
  auto i = std::min(static_cast<std::size_t>(t), std::size_t{7});
  double f = t - static_cast<double>(i);
  std::array<int, 3> rgb{};
  for (std::size_t c = 0; c < 3; ++c) {
    rgb[c] =
        static_cast<int>(std::lround(kViridis[i][c] + f * (kViridis[i + 1][c] - kViridis[i][c])));
  }
  return fmt::format("#{:02X}{:02X}{:02X}", rgb[0], rgb[1], rgb[2]);
}

namespace {

constexpr double kMarginLeft = 72;
constexpr double kMarginRight = 24;
constexpr double kMarginTop = 40;
constexpr double kMarginBottom = 52;
constexpr double kLegendRow = 20;
constexpr std::size_t kMaxMarkers = 200;
constexpr const char* kFont =
    "system-ui, -apple-system, &#39;Segoe UI&#39;, Roboto, &#39;DejaVu Sans&#39;, Arial, "
    "sans-serif";

bool finite_point(const std::pair<double, double>& p) {
  return std::isfinite(p.first) && std::isfinite(p.second);
}

// Number of UTF-8 code points: the legend's width estimate counts characters, not bytes.
std::size_t text_length(std::string_view s) {
  return static_cast<std::size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

const char* dasharray(LineStyle style) {
  switch (style) {
    case LineStyle::solid:
      return nullptr;
    case LineStyle::dashed:
      return "7 4";
    case LineStyle::dotted:
      return "2 3";
  }
  return nullptr;
}

struct Scale {
  double lo, hi, px0, px1;  // maps [lo, hi] to [px0, px1]
  double operator()(double v) const { return px0 + (v - lo) / (hi - lo) * (px1 - px0); }
};

struct Axis {
  double lo, hi;
  AxisTicks ticks;
};

// The domain of one axis: fixed ends where given, else the data range (optionally extended
// to the ticks); tick values outside the domain are dropped.
Axis make_axis(double data_lo, double data_hi, bool has_data, std::optional<double> fixed_lo,
               std::optional<double> fixed_hi, bool extend) {
  double lo = fixed_lo.value_or(has_data ? data_lo : 0.0);
  double hi = fixed_hi.value_or(has_data ? data_hi : 1.0);
  if (hi < lo) std::swap(lo, hi);
  Axis a{lo, hi, nice_ticks(lo, hi, 6)};
  if (lo == hi) {  // nice_ticks widened a degenerate range: use its bounds
    a.lo = a.ticks.lo;
    a.hi = a.ticks.hi;
  } else if (extend) {
    if (!fixed_lo) a.lo = a.ticks.lo;
    if (!fixed_hi) a.hi = a.ticks.hi;
  }
  const double eps = (a.hi - a.lo) * 1e-9;
  std::erase_if(a.ticks.values, [&](double v) { return v < a.lo - eps || v > a.hi + eps; });
  return a;
}

// Pixel-space polyline pieces of one series: runs of finite points, thinned per pixel column.
std::vector<std::vector<std::pair<double, double>>> project(const ChartSeries& s, const Scale& sx,
                                                            const Scale& sy, bool thin) {
  std::vector<std::vector<std::pair<double, double>>> pieces(1);
  for (const auto& p : s.points) {
    if (!finite_point(p)) {
      if (!pieces.back().empty()) pieces.emplace_back();
      continue;
    }
    pieces.back().emplace_back(sx(p.first), sy(p.second));
  }
  if (pieces.back().empty()) pieces.pop_back();
  if (!thin) return pieces;
  for (auto& piece : pieces) {
    std::vector<std::pair<double, double>> kept;
    std::size_t i = 0;
    while (i < piece.size()) {
      // One group: consecutive points in the same pixel column. Keep first, min, max, last.
      std::size_t j = i;
      const double column = std::floor(piece[i].first);
      std::size_t lo = i, hi = i;
      while (j < piece.size() && std::floor(piece[j].first) == column) {
        if (piece[j].second < piece[lo].second) lo = j;
        if (piece[j].second > piece[hi].second) hi = j;
        ++j;
      }
      std::array<std::size_t, 4> picks = {i, std::min(lo, hi), std::max(lo, hi), j - 1};
      std::size_t last = piece.size();
      for (std::size_t k : picks) {
        if (k != last) kept.push_back(piece[k]);
        last = k;
      }
      i = j;
    }
    piece.swap(kept);
  }
  return pieces;
}

void append_stroke(std::string& out, const ChartSeries& s) {
  out += fmt::format(" fill=\"none\" stroke=\"{}\" stroke-width=\"{:.2f}\"", escape_html(s.color),
                     s.width);
  if (s.opacity < 1) out += fmt::format(" stroke-opacity=\"{:.2f}\"", s.opacity);
  if (const char* dash = dasharray(s.style)) out += fmt::format(" stroke-dasharray=\"{}\"", dash);
}

}  // namespace

std::string render_line_chart(const LineChart& chart) {
  const std::string id = escape_html(chart.id.empty() ? "chart" : chart.id);
  const double width = std::max(chart.width, 200);
  const double height = std::max(chart.height, 160);
  const double plot_left = kMarginLeft, plot_right = width - kMarginRight;
  const double plot_top = kMarginTop, plot_bottom = height - kMarginBottom;

  // Data ranges over finite points (only points inside fixed ends count for the other axis).
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
  for (const auto& s : chart.series) {
    for (const auto& p : s.points) {
      if (!finite_point(p)) continue;
      if ((chart.x_min && p.first < *chart.x_min) || (chart.x_max && p.first > *chart.x_max))
        continue;
      x_lo = std::min(x_lo, p.first);
      x_hi = std::max(x_hi, p.first);
      y_lo = std::min(y_lo, p.second);
      y_hi = std::max(y_hi, p.second);
    }
  }
  const bool has_data = x_lo <= x_hi;
  const Axis ax =
      make_axis(x_lo, x_hi, has_data, chart.x_min, chart.x_max, chart.extend_x_to_ticks);
  const Axis ay =
      make_axis(y_lo, y_hi, has_data, chart.y_min, chart.y_max, chart.extend_y_to_ticks);
  const Scale sx{ax.lo, ax.hi, plot_left, plot_right};
  const Scale sy{ay.lo, ay.hi, plot_bottom, plot_top};

  // Legend layout: a grid of equal cells below the plot.
  double cell = 60;
  auto finite_count = [](const ChartSeries& s) {
    return static_cast<std::size_t>(std::count_if(s.points.begin(), s.points.end(), finite_point));
  };
  for (const auto& s : chart.series) {
    std::size_t chars = text_length(s.label) + (finite_count(s) == 0 ? 10 : 0);
    cell = std::max(cell, 34 + 6.8 * static_cast<double>(chars) + 16);
  }
  const auto columns =
      std::max<std::size_t>(1, static_cast<std::size_t>((plot_right - plot_left + 16) / cell));
  const std::size_t rows = (chart.series.size() + columns - 1) / columns;
  const double total_height = height + (rows > 0 ? static_cast<double>(rows) * kLegendRow + 8 : 0);

  std::string out;
  out += fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" id=\"{0}\" width=\"{1:.0f}\" "
      "height=\"{2:.0f}\" viewBox=\"0 0 {1:.0f} {2:.0f}\" role=\"img\" "
      "aria-labelledby=\"{0}-title\" "
      "font-family=\"{3}\" font-size=\"12\">\n",
      id, width, total_height, kFont);
  out += fmt::format("<title id=\"{}-title\">{}</title>\n", id, escape_html(chart.title));
  out +=
      fmt::format("<rect x=\"0\" y=\"0\" width=\"{:.0f}\" height=\"{:.0f}\" fill=\"#ffffff\"/>\n",
                  width, total_height);
  out += fmt::format(
      "<defs><clipPath id=\"{}-clip\"><rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" "
      "height=\"{:.1f}\"/>"
      "</clipPath></defs>\n",
      id, plot_left - 4, plot_top - 4, plot_right - plot_left + 8, plot_bottom - plot_top + 8);
  out += fmt::format(
      "<text x=\"{:.1f}\" y=\"22\" font-size=\"15\" font-weight=\"600\" "
      "fill=\"#1a1a1a\">{}</text>\n",
      plot_left, escape_html(chart.title));

  // Grid and ticks.
  out += "<g class=\"grid\" stroke-width=\"1\">\n";
  for (double v : ay.ticks.values) {
    double y = sy(v);
    const char* color = v == 0 && ay.lo < 0 ? "#b0b0b0" : "#e6e6e6";
    out += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\"/>\n",
        plot_left, y, plot_right, y, color);
  }
  for (double v : ax.ticks.values) {
    double x = sx(v);
    out += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#f0f0f0\"/>\n", x,
        plot_top, x, plot_bottom);
  }
  out += "</g>\n<g class=\"axes\" fill=\"#333333\">\n";
  out += fmt::format(
      "<path d=\"M{:.1f} {:.1f} V{:.1f} H{:.1f}\" fill=\"none\" stroke=\"#444444\" "
      "stroke-width=\"1\"/>\n",
      plot_left, plot_top, plot_bottom, plot_right);
  for (double v : ax.ticks.values) {
    double x = sx(v);
    out += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#444444\"/>", x,
        plot_bottom, plot_bottom + 5);
    out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", x,
                       plot_bottom + 19, escape_html(format_tick(v, ax.ticks.step)));
  }
  for (double v : ay.ticks.values) {
    double y = sy(v);
    out += fmt::format(
        "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#444444\"/>",
        plot_left - 5, y, plot_left, y);
    out +=
        fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" dy=\"0.32em\" text-anchor=\"end\">{}</text>\n",
                    plot_left - 8, y, escape_html(format_tick(v, ay.ticks.step)));
  }
  out += fmt::format(
      "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"13\">{}</text>\n",
      (plot_left + plot_right) / 2, plot_bottom + 40, escape_html(chart.x_label));
  out += fmt::format(
      "<text transform=\"translate(18 {:.1f}) rotate(-90)\" text-anchor=\"middle\" "
      "font-size=\"13\">{}</text>\n",
      (plot_top + plot_bottom) / 2, escape_html(chart.y_label));
  out += "</g>\n";

  // Series.
  out += fmt::format("<g class=\"series\" clip-path=\"url(#{}-clip)\">\n", id);
  const auto thin_above = static_cast<std::size_t>(4 * (plot_right - plot_left));
  for (const auto& s : chart.series) {
    const std::size_t finite = finite_count(s);
    if (finite == 0) continue;
    const auto pieces = project(s, sx, sy, finite > thin_above);
    std::string d;
    for (const auto& piece : pieces) {
      for (std::size_t i = 0; i < piece.size(); ++i) {
        d += fmt::format("{}{:.1f} {:.1f}", i == 0 ? (d.empty() ? "M" : " M") : " L",
                         piece[i].first, piece[i].second);
      }
    }
    out += fmt::format("<path data-series=\"{}\" d=\"{}\"", escape_html(s.id), d);
    append_stroke(out, s);
    out += " stroke-linejoin=\"round\" stroke-linecap=\"round\"/>\n";
    if ((s.markers && finite <= kMaxMarkers) || finite == 1) {
      out += fmt::format(
          "<g data-series-markers=\"{}\" fill=\"{}\" stroke=\"#ffffff\" stroke-width=\"1\">",
          escape_html(s.id), escape_html(s.color));
      for (const auto& p : s.points) {
        if (!finite_point(p)) continue;
        out += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.2\"/>", sx(p.first),
                           sy(p.second));
      }
      out += "</g>\n";
    }
  }
  out += "</g>\n";
  if (!has_data) {
    out += fmt::format(
        "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"14\" "
        "fill=\"#777777\">no data</text>\n",
        (plot_left + plot_right) / 2, (plot_top + plot_bottom) / 2);
  }

  // Legend.
  if (!chart.series.empty()) {
    out += "<g class=\"legend\">\n";
    for (std::size_t i = 0; i < chart.series.size(); ++i) {
      const auto& s = chart.series[i];
      double x = plot_left + static_cast<double>(i % columns) * cell;
      double y = height + 4 + static_cast<double>(i / columns) * kLegendRow + kLegendRow / 2;
      out += fmt::format("<path d=\"M{:.1f} {:.1f} H{:.1f}\"", x, y, x + 26);
      ChartSeries sample = s;
      sample.opacity = std::max(s.opacity, 0.6);  // faint training curves stay visible here
      sample.width = std::max(s.width, 2.0);
      append_stroke(out, sample);
      out += "/>";
      if (s.markers) {
        out += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.2\" fill=\"{}\"/>", x + 13, y,
                           escape_html(s.color));
      }
      out += fmt::format(
          "<text x=\"{:.1f}\" y=\"{:.1f}\" dy=\"0.32em\" fill=\"#1a1a1a\">{}{}</text>\n", x + 34, y,
          escape_html(s.label), finite_count(s) == 0 ? " (no data)" : "");
    }
    out += "</g>\n";
  }
  out += "</svg>\n";
  return out;
}

}  // namespace difftx::report
