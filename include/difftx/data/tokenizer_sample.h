// The text the tokenizer is trained on: lines of training documents (cut at spaces to at most
// 4096 bytes), drawn from a seeded choice of training files holding about 4x the budget and
// kept with probability budget / their size, until the budget is full. Validation text is
// never used. A corpus smaller than the budget is used whole, in order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "difftx/core/progress.h"
#include "difftx/data/corpus.h"
#include "difftx/data/split_plan.h"

namespace difftx::data {

inline constexpr std::size_t kSentenceBytes = 4096;

struct TokenizerSample {
  std::vector<std::string> sentences;
  std::uint64_t bytes = 0;       // text in the sentences
  std::uint64_t files_read = 0;  // files the sample was drawn from
};

TokenizerSample sample_tokenizer_text(const Corpus& corpus, const SplitPlan& plan,
                                      const std::string& jsonl_field, std::uint64_t budget,
                                      std::uint64_t seed, const ProgressOptions& progress);

}  // namespace difftx::data
