// needle-mix: a text corpus (Brown by default) cut into documents that fit a context, a given
// fraction of them carrying "magic number" needles (LWM's "The special magic {city} number
// is: {number}.", moved back to a sentence end) and, at their end, the completion-form
// questions with their answers, so small models learn the retrieval format. Test documents
// use cities and numbers that never appear in training or validation (written to needles.json
// and needle-test.jsonl for `difftx eval needle`).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "difftx/core/progress.h"

namespace difftx::data {

inline constexpr const char* kNeedleTemplate = "The special magic {city} number is: {number}.";
inline constexpr const char* kNeedleQuestion = "The special magic {city} number is:";

// 100 single-word city names, the keys of the needles.
const std::vector<std::string>& needle_cities();

struct NeedleMixOptions {
  std::vector<std::filesystem::path> inputs;  // text files; empty = the Brown corpus
  std::filesystem::path brown_dir;
  std::filesystem::path tokenizer;  // reuse this model instead of training one
  int vocab_size = 4096;
  double needle_fraction = 0.5;  // of the training and validation documents
  int context = 1024;            // tokens a document fits in (documents are 25-90% of it)
  int max_needles = 1;           // needles per needle document: 1 .. max
  int digits = 5;                // of the magic numbers
  int test_cities = 20;          // of the 100, held out for the test split
  int test_numbers = 1000;       // numbers held out for the test split
  int test_documents = 200;
  int test_needles = 0;       // needles per test document; 0 = max_needles
  double val_fraction = 0.1;  // source documents held out (half validation, half test)
  std::uint64_t seed = 1;
  std::filesystem::path out_dir;
  ProgressMode progress = ProgressMode::automatic;
};

struct NeedleMixSummary {
  std::uint64_t train_documents = 0, train_needle_documents = 0;
  std::uint64_t val_documents = 0, test_documents = 0;
  std::uint64_t tokens = 0;
};

NeedleMixSummary write_needle_mix(const NeedleMixOptions& options);

}  // namespace difftx::data
