// `difftx export hf`: a difftx checkpoint folder -> a Hugging Face model folder that
// transformers' AutoModelForCausalLM and AutoTokenizer load (DiffLlama or Llama).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "difftx/core/tensor.h"

namespace difftx::hf {

struct HfExportOptions {
  DType dtype = DType::f32;  // stored weights: f32 or bf16
};

struct HfExportResult {
  std::string model_type;          // "diffllama" or "llama"
  std::int64_t parameters = 0;     // elements written to model.safetensors
  bool head_gain_folded = false;   // DIFF V1 per-head norm gain folded into o_proj
  bool tokenizer = false;          // tokenizer files written
  std::vector<std::string> files;  // written, in order
};

// Loads the checkpoint folder `checkpoint` (load_model_checkpoint) and writes config.json,
// generation_config.json, model.safetensors (metadata format "pt" and difftx_rope_style) and,
// when the checkpoint has tokenizer.model, tokenizer.model, tokenizer.json,
// tokenizer_config.json and special_tokens_map.json into `out` (created if missing). Throws
// difftx::Error for DIFF V2 (no transformers class), a tokenizer with more pieces than the
// model's vocabulary, `out` being the checkpoint folder, or an `out` holding sharded or PyTorch
// weights that loaders would pick up instead of the new file.
HfExportResult export_hf(const std::filesystem::path& checkpoint, const std::filesystem::path& out,
                         const HfExportOptions& options = {});

}  // namespace difftx::hf
