// An independent CPU transcription of the Hugging Face DiffLlama / Llama eager forward pass
// (transformers modeling_diffllama.py / modeling_llama.py), working on HF tensor names and
// layout, in double precision. Tests use it to check the difftx <-> HF mapping without Python.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "difftx/core/tensor.h"

namespace difftx::hf::testing {

// Logits (T, V) row-major for one sequence of token ids; `config` is the HF config.json
// object; `tensors` the HF tensors (f32 CPU). A tied model may lack lm_head.weight.
std::vector<double> hf_reference_logits(const nlohmann::json& config,
                                        const std::map<std::string, Tensor>& tensors,
                                        const std::vector<std::int32_t>& tokens);

}  // namespace difftx::hf::testing
