// `difftx import hf`: a Hugging Face DiffLlama / Llama folder (config.json plus single or
// sharded safetensors) -> difftx parameters and a difftx checkpoint folder.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "difftx/model/config.h"
#include "difftx/model/params.h"

namespace difftx::hf {

struct HfImportOptions {
  // difftx RoPE layout of the result; unset: the style recorded by `difftx export hf` in the
  // safetensors metadata (difftx_rope_style), else half_split (HF's own order, no permutation).
  std::optional<RopeStyle> rope_style;
};

struct HfModel {
  std::string model_type;  // "diffllama" or "llama"
  ModelConfig config;
  ParamSet params;                  // CPU f32, every tensor of parameter_specs(config)
  std::vector<std::string> files;   // safetensors files read
  std::filesystem::path tokenizer;  // <in>/tokenizer.model, empty if absent
};

// Reads and converts a Hugging Face model folder. Errors name the file and tensor (see
// parse_hf_config, load_hf_weights and from_hf_tensors).
HfModel read_hf_model(const std::filesystem::path& in, const HfImportOptions& options = {});

struct HfImportResult {
  HfModel model;
  std::string tokenizer_note;  // empty, or why the copied tokenizer.model is not a difftx one
};

// read_hf_model, then save_model_checkpoint into `out` (tokenizer.model copied when present).
// Throws difftx::Error when `out` is the input folder.
HfImportResult import_hf(const std::filesystem::path& in, const std::filesystem::path& out,
                         const HfImportOptions& options = {});

}  // namespace difftx::hf
