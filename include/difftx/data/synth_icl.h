// icl: many-shot classification episodes for `difftx eval icl`, made from the Brown corpus:
// each example is a sentence and its label is the genre (Brown category) of the document it
// comes from (15 classes, like TREC or Banking-77 with a fixed label set). An episode is
//   "Sentence: <text>\nGenre: <label>\n\n" repeated,
// filling a context of `context` tokens (padded with <pad>, masked); the label tokens are the
// only labelled targets. Demonstration and query pools are written as JSONL with the prompt
// template (icl/task.json), so the evaluator can build prompts of any size and order.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "difftx/core/progress.h"

namespace difftx::data {

inline constexpr const char* kIclInputPrefix = "Sentence: ";
inline constexpr const char* kIclLabelPrefix = "\nGenre:";  // the label follows after a space
inline constexpr const char* kIclSeparator = "\n\n";

struct IclOptions {
  std::filesystem::path brown_dir;
  std::filesystem::path tokenizer;  // reuse this model instead of training one
  int vocab_size = 4096;
  int context = 512;  // tokens per episode (a record of context + 1 tokens)
  std::uint64_t train_episodes = 20'000;
  std::uint64_t val_episodes = 500;
  std::uint64_t test_episodes = 500;
  int min_chars = 20, max_chars = 300;  // sentences outside are not used
  double val_fraction = 0.2;            // Brown documents held out (half validation, half test)
  std::uint64_t seed = 1;
  std::filesystem::path out_dir;
  ProgressMode progress = ProgressMode::automatic;
};

struct IclSummary {
  std::uint64_t train_episodes = 0, val_episodes = 0, test_episodes = 0;
  std::uint64_t train_pool = 0, val_pool = 0, test_pool = 0;  // labelled sentences
  double mean_demonstrations = 0;                             // per training episode
};

IclSummary write_icl(const IclOptions& options);

// The text of one demonstration (or query with its label): "Sentence: <text>\nGenre: <label>".
std::string icl_example_text(const std::string& text, const std::string& label);

}  // namespace difftx::data
