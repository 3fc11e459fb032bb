// `difftx eval quant-logits` (paper Fig. 8): dynamic post-training absmax quantization of the
// attention logits (every score map, both DIFF V1 maps included) to each of --bits (16 = none),
// per tensor (one scale per sequence and layer) or per head (one per sequence, layer and score
// map), then the loss of the quantized model on held-out text and its KL divergence to the
// unquantized one; with --task needle also the retrieval accuracy (needle.h) at each width.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "difftx/eval/context.h"
#include "difftx/eval/held_out.h"
#include "difftx/eval/models.h"
#include "difftx/eval/needle.h"

namespace difftx::eval {

struct QuantOptions {
  std::vector<int> bits = {16, 8, 6, 4};
  bool per_head = false;
  std::uint64_t tokens = 32768;  // held-out tokens for loss and KL
  int context = 0;               // window length; 0 = max_seq_len
  int batch = 1;
  bool needle = false;  // also the needle accuracy at each width
  NeedleOptions needle_options;

  nlohmann::json to_json() const;
};

// Results: {"granularity": "per_tensor" | "per_head", "tokens", "fused_loss", "points":
// [{"bits", "loss", "perplexity", "delta_loss", "kl"}], "needle": [{"bits", "accuracy",
// "by_config"}] (with --task needle)}. "fused_loss" is the fused attention path's loss on the
// same tokens: the 16-bit probe loss must equal it up to rounding.
nlohmann::json run_quant(EvalModel& model, const HeldOutText& text, const QuantOptions& options,
                         const EvalContext& ctx);

// Loss and KL at each width over a token stream: consecutive windows of `context` tokens predicting
// the next token, `batch` per forward. {"tokens", "fused_loss", "points"} as above.
nlohmann::json quant_statistics(EvalModel& model, const std::vector<std::int32_t>& tokens,
                                const std::vector<int>& bits, bool per_head, int context, int batch,
                                const EvalContext& ctx);

}  // namespace difftx::eval
