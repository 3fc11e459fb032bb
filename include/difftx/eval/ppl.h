// `difftx eval ppl`: loss, perplexity and bits per byte on held-out text, with sliding windows,
// and the loss against position in the window (the paper's long-context figure: cumulative
// average NLL against position).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include "difftx/eval/context.h"
#include "difftx/eval/held_out.h"
#include "difftx/eval/models.h"

namespace difftx::eval {

struct PplOptions {
  int context = 0;               // window length in tokens; 0 = the model's max_seq_len
  int stride = 0;                // start-to-start distance of windows; 0 = context (no overlap)
  int batch = 4;                 // windows per forward
  std::uint64_t max_tokens = 0;  // tokens of held-out text to use; 0 = all
  int buckets = 16;              // position buckets for mean loss by position

  nlohmann::json to_json() const;
};

// Windows over the document stream (documents joined with EOS, as in training): window k
// starts at token k * stride and predicts tokens k*stride + 1 .. k*stride + context; each target
// is scored once, by the first window that holds it as a new target (so all but the first
// window score only their last `stride` targets, with at least context - stride tokens of
// context). Results: {"tokens", "bytes", "loss", "perplexity", "bits_per_byte", "context",
// "stride", "windows", "from_shards", "by_position": {"start", "end", "mean_nll", "count"},
// "cumulative": {"position", "mean_nll"}}; positions are 0-based positions of the predicting
// token in its window (= tokens of context before the target, minus one).
nlohmann::json run_ppl(EvalModel& model, const HeldOutText& text, const PplOptions& options,
                       const EvalContext& ctx);

}  // namespace difftx::eval
