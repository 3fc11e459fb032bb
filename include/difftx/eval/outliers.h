// `difftx eval outliers` (paper Table 5): activation outliers over a token budget. Two kinds:
//   - attention logits |q.k| / sqrt(d) of every score map (both maps of each DIFF V1 head, all
//     2h maps of V2, the h maps of the baseline), causally masked entries excluded;
//   - hidden states: each layer's output (the residual stream after its FFN add).
// For each kind, over all layers and per layer: top-1/2/3/10/100 (k-th largest |x|), the median
// and top-1 / median (stats.h gives the median's error bound).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include "difftx/eval/context.h"
#include "difftx/eval/held_out.h"
#include "difftx/eval/models.h"

namespace difftx::eval {

struct OutlierOptions {
  std::uint64_t tokens = 400000;  // budget; the held-out text may hold fewer (then all of it)
  int context = 0;                // window length; 0 = max_seq_len
  int batch = 1;                  // windows per forward

  nlohmann::json to_json() const;
};

// Non-overlapping windows of `context` tokens of the held-out stream (a shorter last window
// keeps its length). Results: {"tokens", "windows", "context", "logits": summary, "hidden":
// summary, "per_layer": [{"layer", "logits", "hidden"}]} with summaries as AbsSummary::to_json.
nlohmann::json run_outliers(EvalModel& model, const HeldOutText& text,
                            const OutlierOptions& options, const EvalContext& ctx);

// The same over a given token stream (windows of `context`, `batch` per forward); run_outliers
// adds "requested_tokens".
nlohmann::json outlier_statistics(EvalModel& model, const std::vector<std::int32_t>& tokens,
                                  int context, int batch, const EvalContext& ctx);

}  // namespace difftx::eval
