// Hugging Face config.json <-> ModelConfig: "diffllama" for DIFF V1, "llama" for the softmax
// baseline. Field-by-field mapping: docs/hf.md.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "difftx/core/tensor.h"
#include "difftx/hf/hf_layout.h"
#include "difftx/model/config.h"

namespace difftx::hf {

// "diffllama" or "llama" for a config (throws difftx::Error for DIFF V2).
const char* hf_model_type(const ModelConfig& config);

// The config.json of an export of `config` whose weights are stored in `dtype` (f32 or bf16).
// Special token ids are difftx's reserved ones (difftx/data/tokenizer.h).
nlohmann::json hf_config_json(const ModelConfig& config, DType dtype);

// generation_config.json: bos/eos/pad ids and greedy decoding as the default.
nlohmann::json hf_generation_config_json();

// An HF config read for import.
struct HfImportConfig {
  std::string model_type;  // "diffllama" or "llama"
  HfHeads heads;
  ModelConfig config;  // the difftx config (DiffLlama: head_norm_gain false)
};

// Parses and checks an HF config.json object (`source` names it in errors). `rope_style` is the
// difftx RoPE layout to import into (the row maps take care of HF's half-split order).
// Throws difftx::Error naming the field for an unknown model_type, an activation other than
// SiLU, biases, RoPE scaling, head counts difftx cannot represent, or a malformed field.
HfImportConfig parse_hf_config(const nlohmann::json& j, const std::string& source,
                               RopeStyle rope_style);

}  // namespace difftx::hf
