// `difftx import hf`: reads a Hugging Face DiffLlama / Llama folder into difftx parameters.
#include "difftx/hf/hf_import.h"

#include <nlohmann/json.hpp>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
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
  if (it->second == "interleaved") return RopeStyle::interleaved;
  if (it->second == "half_split") return RopeStyle::half_split;
  fail("{}: metadata difftx_rope_style is \"{}\", expected \"interleaved\" or \"half_split\"",
       w.files.front(), it->second);
}

}  // namespace

HfModel read_hf_model(const fs::path& in, const HfImportOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(in, ec)) {
    fail("'{}' is not a folder (expected a Hugging Face model folder with config.json and "
         "safetensors weights)", in.string());
  }
  const fs::path config_path = in / "config.json";
  if (!fs::exists(config_path, ec)) fail("'{}' has no config.json", in.string());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file_text(config_path));
  } catch (const nlohmann::json::parse_error& e) {
    fail("{}: not valid JSON: {}", config_path.string(), e.what());
  }
  HfImportConfig hc = parse_hf_config(j, config_path.string(), RopeStyle::half_split);
  HfWeights weights = load_hf_weights(in);
  hc.config.rope_style = options.rope_style ? *options.rope_style : recorded_rope_style(weights);

  HfModel model;
  model.model_type = hc.model_type;
  model.config = hc.config;
  model.params = from_hf_tensors(hc.config, hc.heads, weights.set);
  model.files = weights.files;
  if (fs::exists(in / "tokenizer.model", ec)) model.tokenizer = in / "tokenizer.model";
  return model;
}

HfImportResult import_hf(const fs::path& in, const fs::path& out, const HfImportOptions& options) {
  std::error_code ec;
  if (fs::exists(in, ec) && fs::exists(out, ec) && fs::equivalent(in, out, ec)) {
    fail("--out '{}' is the input folder: the import would overwrite its config.json; choose "
         "another folder", out.string());
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
