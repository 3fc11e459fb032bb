// Which documents of a corpus are validation data (docs/data.md, "Train / validation split"):
// whole files by the exact seeded rule, JSONL lines by a seeded hash, the tail of a single
// document, or files given as validation inputs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "difftx/data/corpus.h"

namespace difftx::data {

struct SplitPlan {
  enum class Mode {
    none,       // val_fraction 0: everything is training data
    files,      // whole files, exact count (choose_validation)
    documents,  // JSONL lines (and any file in the same corpus) by hash_chooses_validation
    tail,       // one document: its tail (from tail_cut) is validation
    inputs,     // files given with --val-input
  };
  Mode mode = Mode::none;
  double val_fraction = 0;
  std::uint64_t seed = 0;
  std::vector<bool> validation_file;  // files / inputs: per corpus file
  std::vector<bool> empty_file;       // plain files of 0 bytes (skipped)
  std::size_t tail_file = 0;
  std::uint64_t tail_cut = 0;  // byte (text) or token (token file) offset where validation starts

  // Whether document `doc` (0 for a text file, the line number for JSONL) of `file` is
  // validation; for the tail mode, whether its part starting at `offset` is.
  bool validation(const Corpus& corpus, std::size_t file, std::uint64_t doc,
                  std::uint64_t offset) const;
  // The key hashed for a JSONL document: "<file key>:<line>".
  static std::string document_key(const Corpus& corpus, std::size_t file, std::uint64_t doc);
};

// Plans the split. The tail mode reads its document once to find the cut (twice when it is
// compressed: once for its size). Throws when a split would be empty for certain (one empty
// document, a validation fraction of a single file that has no room to cut).
SplitPlan plan_split(const Corpus& corpus, double val_fraction, std::uint64_t seed,
                     const std::string& jsonl_field);

}  // namespace difftx::data
