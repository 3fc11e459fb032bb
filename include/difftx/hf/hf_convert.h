// Weights between difftx parameters (params.h names) and Hugging Face DiffLlama / Llama tensors
// (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ...), in memory.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "difftx/core/tensor.h"
#include "difftx/hf/hf_layout.h"
#include "difftx/model/config.h"
#include "difftx/model/params.h"

namespace difftx::hf {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// The HF name of each difftx parameter (the per-head norm gain has none: it is folded into
// o_proj on export).
std::string hf_name_of(const std::string& difftx_name);

// difftx -> HF: f32 CPU tensors in HF layout, in parameter order. W_q/W_k/W_v rows reordered
// (export_*_rows), the DIFF V1 per-head norm gain folded into W_o's columns
// (o_proj[:, i*2d + c] = W_o[:, i*2d + c] * g[c]), output.weight -> lm_head.weight when untied
// (a tied export has no lm_head.weight, as transformers writes it). Throws for DIFF V2.
NamedTensors to_hf_tensors(const ModelConfig& config, const ParamSet& params);

// HF tensors by name (f32 CPU), with the file each came from for error messages.
struct HfTensorSet {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> origin;  // tensor name -> file (for messages)
  std::string where;                          // the folder or file set, for messages
};

// HF -> difftx for `config` (from parse_hf_config) and `heads`. Every expected tensor must be
// present with the HF shape, finite; tensors nobody expects are an error, except the rotary
// inv_freq buffers older checkpoints carry. A tied model may carry lm_head.weight only if it
// equals the embedding. Each failure is a difftx::Error naming the tensor and its file.
ParamSet from_hf_tensors(const ModelConfig& config, const HfHeads& heads, const HfTensorSet& set);

}  // namespace difftx::hf
