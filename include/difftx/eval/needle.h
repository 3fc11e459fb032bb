// `difftx eval needle` (paper Tables 2 and 3): multi-needle retrieval accuracy per
// (N, R, depth, length) with greedy decoding, and the attention allocation at the positions
// that produce the answer. Samples and prompts: needle_gen.h.
//
// Scoring: each queried needle's prompt (the shared context, then its query) is continued
// greedily for |answer| + 2 tokens (stopping at EOS or once a digit run has ended); it is found
// when the first digit run of the continuation equals its number. A sample's accuracy is the
// fraction of its R needles found; a cell's is the mean over samples.
//
// Attention allocation: the sequence context + query of needle 0 + its answer but the last
// token runs through the probe path; at the positions that predict the answer tokens, each
// head's attention row a (softmax: the map; DIFF V1: A1 - lambda A2; DIFF V2:
// A_2i - sigmoid(gate) A_2i+1) is normalised by the sum of its absolute values, |a_s| / sum |a|,
// and summed over key groups: the answer needle's tokens, the other needles, the haystack noise,
// the leading EOS ("sink") and the query and answer tokens. Shares are averaged over heads,
// layers, answer positions and samples; per (N, R, depth) they sum to 1.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "difftx/eval/context.h"
#include "difftx/eval/models.h"
#include "difftx/eval/needle_gen.h"
#include "difftx/model/probe.h"

namespace difftx::eval {

struct NeedleOptions {
  std::vector<NeedleConfig> configs = {{1, 1}};
  std::vector<int> depths = {0, 25, 50, 75, 100};
  std::vector<int> lengths;  // prompt tokens; empty = the model's max_seq_len
  int samples = 50;
  int digits = 7;
  std::vector<std::string> keys;  // empty = builtin_needle_keys()
  bool allocation = true;
  ProbeQuantization quant;  // bits < 16: decode through the quantized probe path (quant-logits)

  nlohmann::json to_json() const;
};

// Parses "1:1,2:2,4:2" (N:R pairs).
std::vector<NeedleConfig> parse_needle_configs(const std::string& text);

// Results: {"cells": [{"needles", "queried", "depth", "length", "samples", "accuracy",
// "answer_accuracy"}], "by_config": [{"needles", "queried", "accuracy"}], "accuracy",
// "allocation": [{"needles", "queried", "depth", "answer", "other_needles", "noise", "sink",
// "query", "samples"}], "examples": [...first sample of each cell: key, expected, generated]}.
nlohmann::json run_needle(EvalModel& model, const std::vector<std::string>& sentences,
                          const NeedleOptions& options, const EvalContext& ctx);

// The allocation shares of one sample (exposed for tests): {"answer", "other_needles", "noise",
// "sink", "query"}.
nlohmann::json needle_allocation(EvalModel& model, const NeedlePrompt& prompt);

}  // namespace difftx::eval
