// `difftx eval icl` (paper section 3.5): many-shot in-context classification with constrained
// decoding. For each number of demonstrations k, the same k demonstrations (icl_data.h) are laid
// out in K random orders (--permutations); every test example is classified as the label whose
// continuation " {label}" has the highest summed log-probability after the prompt (ties: the
// first label in sorted order). Reported per k: accuracy of each order, mean, std and
// best - worst.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "difftx/eval/context.h"
#include "difftx/eval/icl_data.h"
#include "difftx/eval/models.h"

namespace difftx::eval {

struct IclOptions {
  std::vector<int> shots = {0, 1, 2, 4, 8, 16};
  int permutations = 1;

  nlohmann::json to_json() const;
};

// The label chosen for one prompt (host token ids, EOS first): summed log-probabilities of
// every label's continuation, computed with one prefill of the prompt and the labels decoded
// from copies of its KV cache. `scores` receives each label's summed log-probability.
std::string classify(EvalModel& model, const std::vector<std::int32_t>& prompt,
                     const std::vector<std::string>& labels, std::vector<double>* scores = nullptr);

// Results: {"labels", "test", "pool", "points": [{"shots", "accuracies", "mean", "std",
// "best_minus_worst", "prompt_tokens"} or {"shots", "skipped"}]}.
nlohmann::json run_icl(EvalModel& model, const IclTask& task, const IclOptions& options,
                       const EvalContext& ctx);

}  // namespace difftx::eval
