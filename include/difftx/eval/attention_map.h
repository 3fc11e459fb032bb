// `difftx eval attention-map`: pictures of one head's attention on a prompt. DIFF V1: A1, A2 and
// A1 - lambda A2; DIFF V2: the pair's two maps and their combination A_2i - sigmoid(gate) A_2i+1
// (the gate per query row); softmax: the head's map. Each picture is a PNG (query positions
// down, key positions across) and an SVG embedding it with axes, title and color bar.
// Colors: probability maps use viridis on sqrt(a / max a), signed maps a diverging blue-white-red
// scale on sign(a) sqrt(|a| / max |a|) (the square root keeps small weights visible); masked
// (future) entries are light gray.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "difftx/eval/context.h"
#include "difftx/eval/models.h"

namespace difftx::eval {

struct AttentionMapOptions {
  std::string prompt;
  int layer = 0;
  int head = 0;  // output head (DIFF: the differential head; softmax: the head)
  int max_tokens = 256;

  nlohmann::json to_json() const;
};

// A (rows x cols) map rendered as the SVG described above, with the PNG embedded (base64).
struct MapPicture {
  std::string png;  // file bytes
  std::string svg;  // document text
  double min = 0, max = 0;
};
MapPicture render_attention_map(const std::vector<double>& values, int rows, int cols,
                                bool is_signed, const std::string& title);

// Writes <out_dir>/<prefix>-L<layer>-H<head>-<name>.{png,svg}; results: {"prompt", "tokens",
// "layer", "head", "lambda" (V1), "images": [{"name", "title", "png", "svg", "min", "max"}]}.
nlohmann::json run_attention_map(EvalModel& model, const AttentionMapOptions& options,
                                 const std::filesystem::path& out_dir, const std::string& prefix,
                                 const EvalContext& ctx);

}  // namespace difftx::eval
