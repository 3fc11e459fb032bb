// Figures of the evaluation report that are not line charts: the needle accuracy heatmap.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "difftx/eval/image.h"
#include "difftx/eval/report.h"
#include "difftx/report/svg_chart.h"

namespace difftx::eval {

std::string render_needle_heatmap(const std::string& label, int needles, int queried,
                                  const nlohmann::json& cells) {
  std::set<int> depth_set, length_set;
  for (const auto& c : cells) {
    if (c.at("needles") != needles || c.at("queried") != queried) continue;
    depth_set.insert(c.at("depth").get<int>());
    length_set.insert(c.at("length").get<int>());
  }
  const std::vector<int> depths(depth_set.begin(), depth_set.end());
  const std::vector<int> lengths(length_set.begin(), length_set.end());
  const int cw = 64, ch = 28, left = 84, top = 40;
  const int width = left + cw * int(std::max<std::size_t>(1, lengths.size())) + 20;
  const int height = top + ch * int(std::max<std::size_t>(1, depths.size())) + 44;
  const std::string id = fmt::format("{} N={} R={}", label, needles, queried);
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" data-heatmap=\"{}\" width=\"{}\" height=\"{}\" "
      "viewBox=\"0 0 {} {}\" font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"11\">\n",
      report::escape_html(id), width, height, width, height);
  s += fmt::format("<text x=\"{}\" y=\"16\" font-size=\"13\" font-weight=\"600\">{}</text>\n", 4,
                   report::escape_html(fmt::format("{}: N = {}, R = {}", label, needles, queried)));
  s += fmt::format("<text x=\"{}\" y=\"32\" fill=\"#555555\">context length (tokens)</text>\n",
                   left);
  for (std::size_t x = 0; x < lengths.size(); ++x) {
    s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                     left + int(x) * cw + cw / 2, top + ch * int(depths.size()) + 14, lengths[x]);
  }
  for (std::size_t y = 0; y < depths.size(); ++y) {
    s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">depth {}%</text>\n", left - 6,
                     top + int(y) * ch + ch / 2 + 4, depths[y]);
  }
  for (const auto& c : cells) {
    if (c.at("needles") != needles || c.at("queried") != queried) continue;
    const auto x =
        std::find(lengths.begin(), lengths.end(), c.at("length").get<int>()) - lengths.begin();
    const auto y =
        std::find(depths.begin(), depths.end(), c.at("depth").get<int>()) - depths.begin();
    const double acc = c.at("accuracy").get<double>();
    const Rgb color = viridis_rgb(acc);
    const bool light = acc > 0.6;
    s += fmt::format(
        "<rect data-cell=\"depth {} length {}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
        "fill=\"{}\" "
        "stroke=\"#ffffff\"/>\n",
        depths[std::size_t(y)], lengths[std::size_t(x)], left + int(x) * cw, top + int(y) * ch, cw,
        ch, rgb_hex(color));
    s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{}\">{:.2f}</text>\n",
                     left + int(x) * cw + cw / 2, top + int(y) * ch + ch / 2 + 4,
                     light ? "#000000" : "#ffffff", acc);
  }
  s += fmt::format(
      "<text x=\"{}\" y=\"{}\" fill=\"#666666\" font-size=\"10\">accuracy (viridis, 0 to "
      "1)</text>\n",
      left, height - 6);
  s += "</svg>\n";
  return s;
}

}  // namespace difftx::eval
