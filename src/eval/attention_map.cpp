// The attention-map task (attention_map.h): one probe forward, one head's maps to pictures.
#include "difftx/eval/attention_map.h"

#include <algorithm>
#include <cmath>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/eval/image.h"
#include "difftx/model/probe.h"
#include "difftx/report/svg_chart.h"

namespace difftx::eval {
namespace {

struct HeadMaps {
  std::vector<std::vector<double>> maps;  // each (T, T)
  std::vector<std::string> names, titles;
  std::vector<bool> is_signed;
  double lambda = NAN;
};

class MapObserver final : public ProbeObserver {
 public:
  MapObserver(int layer, int head) : layer_(layer), head_(head) {}
  bool wants_attention(int layer) const override { return layer == layer_; }
  void on_attention(const ProbeAttention& a) override {
    if (a.layer != layer_) return;
    const AttentionGeometry& g = a.geometry;
    const int T = g.q_len, S = g.kv_len;
    const Tensor flat = a.probs->reshape({std::int64_t(g.q_heads) * T, S});
    auto map = [&](int m) {
      return flat.rows(std::int64_t(m) * T, std::int64_t(m + 1) * T)
          .to(Device::cpu)
          .to_double_vector();
    };
    const int heads = probe_out_heads(g, a.combine);
    DIFFTX_CHECK(head_ >= 0 && head_ < heads, "--head {} is outside [0, {}) for this model", head_,
                 heads);
    if (a.combine == ProbeCombine::softmax) {
      out.maps.push_back(map(head_));
      out.names = {"softmax"};
      out.titles = {"softmax attention"};
      out.is_signed = {false};
      return;
    }
    auto a1 = map(2 * head_), a2 = map(2 * head_ + 1);
    std::vector<double> d(a1.size());
    if (a.combine == ProbeCombine::diff_v1) {
      out.lambda = a.lambda->to(Device::cpu).to_double_vector()[0];
      for (std::size_t i = 0; i < d.size(); ++i) d[i] = a1[i] - out.lambda * a2[i];
      out.titles = {"A1", "A2",
                    "A1 \u2212 \u03bb A2 (\u03bb = " + fmt::format("{:.3f}", out.lambda) + ")"};
    } else {
      const auto gate = a.gate_logits->to(Device::cpu).to_double_vector();  // (T, heads)
      for (int t = 0; t < T; ++t) {
        const double sig =
            1.0 / (1.0 + std::exp(-gate[std::size_t(t) * std::size_t(heads) + std::size_t(head_)]));
        for (int s = 0; s < S; ++s) {
          const std::size_t at = std::size_t(t) * std::size_t(S) + std::size_t(s);
          d[at] = a1[at] - sig * a2[at];
        }
      }
      out.titles = {"A1 (map 2i)", "A2 (map 2i+1)", "A1 \u2212 \u03c3(gate) A2"};
    }
    out.maps = {a1, a2, d};
    out.names = {"A1", "A2", "diff"};
    out.is_signed = {false, false, true};
  }
  HeadMaps out;

 private:
  int layer_, head_;
};

}  // namespace

nlohmann::json AttentionMapOptions::to_json() const {
  return {{"prompt", prompt}, {"layer", layer}, {"head", head}, {"max_tokens", max_tokens}};
}

MapPicture render_attention_map(const std::vector<double>& values, int rows, int cols,
                                bool is_signed, const std::string& title) {
  DIFFTX_CHECK(rows > 0 && cols > 0 && values.size() == std::size_t(rows) * std::size_t(cols),
               "attention map: {} values for {}x{}", values.size(), rows, cols);
  MapPicture pic;
  pic.min = *std::min_element(values.begin(), values.end());
  pic.max = *std::max_element(values.begin(), values.end());
  const double scale = is_signed ? std::max(std::abs(pic.min), std::abs(pic.max)) : pic.max;
  const int k = std::max(1, 384 / std::max(rows, cols));
  Image img(cols * k, rows * k);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < cols; ++c) {
      const double v = values[std::size_t(r) * std::size_t(cols) + std::size_t(c)];
      Rgb color;
      if (c > r + (cols - rows)) {
        color = {232, 232, 232};  // masked (future) key
      } else if (is_signed) {
        const double x = scale > 0 ? v / scale : 0.0;
        color = diverging_rgb((x < 0 ? -1 : 1) * std::sqrt(std::abs(x)));
      } else {
        color = viridis_rgb(scale > 0 ? std::sqrt(std::max(0.0, v) / scale) : 0.0);
      }
      for (int dy = 0; dy < k; ++dy) {
        for (int dx = 0; dx < k; ++dx) img.at(c * k + dx, r * k + dy) = color;
      }
    }
  }
  pic.png = encode_png(img);
  // SVG: title, the picture with axes, a color bar on the right
  const int W = img.width, H = img.height, left = 56, top = 34, bar = 14;
  const int width = left + W + 24 + bar + 64, height = top + H + 44;
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"11\">\n",
      width, height, width, height);
  s += fmt::format("<rect width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>\n", width, height);
  s += fmt::format("<text x=\"{}\" y=\"20\" font-size=\"14\" font-weight=\"600\">{}</text>\n", left,
                   report::escape_html(title));
  s += fmt::format(
      "<image x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" preserveAspectRatio=\"none\" "
      "style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{}\"/>\n",
      left, top, W, H, base64(pic.png));
  s += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#555555\"/>\n",
      left, top, W, H);
  // ticks: 0 and the last position on both axes, and a middle one
  for (int pos : {0, (cols - 1) / 2, cols - 1}) {
    const double x = left + (pos + 0.5) * k;
    s += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", x,
                     top + H + 14, pos);
  }
  for (int pos : {0, (rows - 1) / 2, rows - 1}) {
    const double y = top + (pos + 0.5) * k + 4;
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", left - 6, y,
                     pos);
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">key position</text>\n",
                   left + W / 2, top + H + 32);
  s += fmt::format(
      "<text x=\"14\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {})\">query "
      "position</text>\n",
      top + H / 2, top + H / 2);
  // color bar: 32 steps from the top (max) down
  const int bx = left + W + 24;
  for (int i = 0; i < 32; ++i) {
    const double f = 1.0 - (i + 0.5) / 32.0;  // 1 at the top
    Rgb c = is_signed ? diverging_rgb(2 * f - 1) : viridis_rgb(f);
    s += fmt::format("<rect x=\"{}\" y=\"{:.2f}\" width=\"{}\" height=\"{:.2f}\" fill=\"{}\"/>\n",
                     bx, top + i * H / 32.0, bar, H / 32.0 + 0.5, rgb_hex(c));
  }
  const double hi = is_signed ? scale : pic.max, lo = is_signed ? -scale : 0.0;
  s += fmt::format("<text x=\"{}\" y=\"{}\">{:.3g}</text>\n", bx + bar + 4, top + 9, hi);
  s += fmt::format("<text x=\"{}\" y=\"{}\">{:.3g}</text>\n", bx + bar + 4, top + H, lo);
  s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"9\" fill=\"#666666\">sqrt scale</text>\n",
                   bx - 4, top + H + 14);
  s += "</svg>\n";
  pic.svg = std::move(s);
  return pic;
}

nlohmann::json run_attention_map(EvalModel& m, const AttentionMapOptions& o,
                                 const std::filesystem::path& out_dir, const std::string& prefix,
                                 const EvalContext& ctx) {
  DIFFTX_CHECK(!o.prompt.empty(), "attention-map: --prompt must not be empty");
  DIFFTX_CHECK(o.layer >= 0 && o.layer < m.config.n_layers, "--layer {} is outside [0, {}) for {}",
               o.layer, m.config.n_layers, m.label);
  DIFFTX_CHECK(o.max_tokens >= 2, "--max-tokens must be >= 2");
  std::vector<std::int32_t> ids = {data::kEosId};
  for (std::int32_t id : m.tokenizer.encode(o.prompt)) ids.push_back(id);
  const int limit = std::min(o.max_tokens, m.config.max_seq_len);
  if (int(ids.size()) > limit) {
    fail(
        "attention-map: the prompt is {} tokens (with the leading EOS); at most {} fit "
        "(--max-tokens, "
        "max_seq_len): shorten it",
        ids.size(), limit);
  }
  MapObserver observer(o.layer, o.head);
  ProbeOptions options;
  options.observer = &observer;
  Tensor inputs = Tensor::empty({1, std::int64_t(ids.size())}, DType::i32);
  std::copy(ids.begin(), ids.end(), inputs.data<std::int32_t>());
  ModelProbe(*m.model).probe_logits(inputs, options);
  const int T = int(ids.size());
  nlohmann::json images = nlohmann::json::array();
  ensure_writable_directory(out_dir);
  for (std::size_t i = 0; i < observer.out.maps.size(); ++i) {
    const std::string title = fmt::format("{} \u2014 layer {}, head {}: {}", m.label, o.layer,
                                          o.head, observer.out.titles[i]);
    const MapPicture pic =
        render_attention_map(observer.out.maps[i], T, T, observer.out.is_signed[i], title);
    const std::string base =
        fmt::format("{}-L{}-H{}-{}", prefix, o.layer, o.head, observer.out.names[i]);
    write_file_atomic(out_dir / (base + ".png"), pic.png);
    write_file_atomic(out_dir / (base + ".svg"), pic.svg);
    images.push_back({{"name", observer.out.names[i]},
                      {"title", observer.out.titles[i]},
                      {"png", base + ".png"},
                      {"svg", base + ".svg"},
                      {"min", pic.min},
                      {"max", pic.max}});
  }
  nlohmann::json tokens = nlohmann::json::array();
  for (std::int32_t id : ids) tokens.push_back(m.tokenizer.piece(id));
  nlohmann::json j = {{"prompt", o.prompt},
                      {"tokens", tokens},
                      {"layer", o.layer},
                      {"head", o.head},
                      {"images", images}};
  if (std::isfinite(observer.out.lambda)) j["lambda"] = observer.out.lambda;
  return j;
}

}  // namespace difftx::eval
