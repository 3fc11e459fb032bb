// Inline-SVG line charts for HTML reports: linear axes with "nice" ticks, legends, escaping.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace difftx::report {

// Escapes & < > " ' as HTML entities: safe in element text and in quoted attribute values.
std::string escape_html(std::string_view text);

// Tick values for a linear axis covering [lo, hi]: step is 1, 2 or 5 times a power of ten,
// chosen so that about `target_count` ticks cover the range; lo/hi of the result are the
// range rounded outward to multiples of step, and values are every multiple of step in
// [lo, hi] (computed as k * step, with -0 written as 0). A degenerate range (lo == hi) is
// widened to [0, 1] when lo == 0, else by 10% of |lo| on each side. Throws difftx::Error if
// lo or hi is not finite or hi < lo.
struct AxisTicks {
  double lo = 0;
  double hi = 1;
  double step = 0.2;
  std::vector<double> values;
};
AxisTicks nice_ticks(double lo, double hi, int target_count = 6);

// A tick label for `value` on an axis with tick spacing `step`: just enough decimals to tell
// ticks apart ("0.25" no, steps are 1/2/5: "0.2", "3.05"), "k"/"M" suffixes for steps of
// 1000 / 1000000 or more ("2k", "1.5M"), scientific notation for steps below 1e-4.
std::string format_tick(double value, double step);

// Color-blind-safe palettes. categorical_color: the Okabe-Ito colors (blue, vermillion,
// bluish green, reddish purple, orange, sky blue, black, yellow), cycling. sequential_color:
// viridis at t in [0, 1] (clamped), for ordered series such as layers.
std::string categorical_color(std::size_t index);
std::string sequential_color(double t);

enum class LineStyle { solid, dashed, dotted };

struct ChartSeries {
  std::string id;     // written as data-series="<id>" on the series' <path> (escaped)
  std::string label;  // legend text
  std::vector<std::pair<double, double>> points;  // (x, y); points with NaN/inf are skipped
  std::string color = "#0072B2";
  LineStyle style = LineStyle::solid;
  double width = 2.0;
  double opacity = 1.0;
  // Circles at the points (drawn only while the series has at most 200 points). A series
  // with a single point always gets one circle, since a one-point path draws nothing.
  bool markers = false;
};

struct LineChart {
  std::string id;  // unique within the page (prefixes the SVG's internal ids); "chart" if empty
  std::string title;
  std::string x_label;
  std::string y_label;
  int width = 880;  // the SVG's width; the legend adds rows below `height`
  int height = 360;
  // Fixed domain ends; unset ends come from the data. Data outside the domain is clipped.
  std::optional<double> x_min, x_max, y_min, y_max;
  // Whether an axis taken from data extends outward to the nearest ticks (y: yes, so curves
  // do not touch the frame; x: no, so the last step sits at the right edge).
  bool extend_x_to_ticks = false;
  bool extend_y_to_ticks = true;
  std::vector<ChartSeries> series;
};

// One self-contained <svg> element (presentation attributes only, no CSS or script needed):
// title, grid, axes with ticks and labels, one <path data-series="..."> per series with
// points (series with thousands of points are thinned to each pixel column's first, min, max
// and last point, which keeps the visible envelope), and a legend below the plot. A chart
// with no finite points shows "no data"; a series without points is listed in the legend
// as "(no data)" and draws no path.
std::string render_line_chart(const LineChart& chart);

}  // namespace difftx::report
