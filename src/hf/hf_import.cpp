// `difftx import hf`: reads a Hugging Face DiffLlama / Llama folder into difftx parameters.
#include "difftx/hf/hf_import.h"

#include <nlohmann/json.hpp>

#include "difftx/core/error.h"
#include "difftx/core/input_file.h"
#include "difftx/core/json_input.h"
#include "difftx/data/tokenizer.h"
#include "difftx/hf/hf_config.h"
#include "difftx/hf/hf_convert.h"
#include "difftx/hf/hf_weights.h"
#include "difftx/model/checkpoint.h"

namespace difftx::hf {
namespace fs = std::filesystem;

namespace {

RopeStyle recorded_rope_style(const HfWeights& w) {
  auto it = w.metadata.find("difftx_rope_style");
  if (it == w.metadata.end()) return RopeStyle::half_split;
  return parse_rope_style(it->second, w.files.front() + ": metadata 'difftx_rope_style'");
}

}  // namespace

HfModel read_hf_model(const fs::path& in, const HfImportOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(in, ec)) {
    fail(
        "'{}' is not a folder (expected a Hugging Face model folder with config.json and "
        "safetensors weights)",
        in.string());
  }
  const fs::path config_path = in / "config.json";
  if (!input_exists(config_path)) fail("'{}' has no config.json", in.string());
  const nlohmann::json j = read_json_file(config_path, "Hugging Face config");
  HfImportConfig hc = parse_hf_config(j, config_path.string(), RopeStyle::half_split);
  HfWeights weights = load_hf_weights(in);
  hc.config.rope_style = options.rope_style ? *options.rope_style : recorded_rope_style(weights);

  HfModel model;
  model.model_type = hc.model_type;
  model.config = hc.config;
  model.params = from_hf_tensors(hc.config, hc.heads, weights.set);
  model.files = weights.files;
  if (input_exists(in / "tokenizer.model")) model.tokenizer = in / "tokenizer.model";
  return model;
}

HfImportResult import_hf(const fs::path& in, const fs::path& out, const HfImportOptions& options) {
  std::error_code ec;
  if (fs::exists(in, ec) && fs::exists(out, ec) && fs::equivalent(in, out, ec)) {
    fail(
        "--out '{}' is the input folder: the import would overwrite its config.json; choose "
        "another folder",
        out.string());
  }
  HfImportResult result;
  result.model = read_hf_model(in, options);
  if (!result.model.tokenizer.empty()) {
    try {
      (void)data::Tokenizer::load(result.model.tokenizer);
    } catch (const Error& e) {
      result.tokenizer_note = e.what();
    }
  }
  save_model_checkpoint(out, nlohmann::json{{"model", result.model.config.to_json()}},
                        result.model.config, result.model.params, result.model.tokenizer, 0);
  return result;
}

}  // namespace difftx::hf
