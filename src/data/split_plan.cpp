// Planning the train/validation split of a corpus (see split_plan.h).
#include "difftx/data/split_plan.h"

#include <fmt/format.h>

#include <algorithm>

#include "difftx/core/error.h"
#include "difftx/data/document_reader.h"
#include "difftx/data/token_file.h"

namespace difftx::data {

namespace {

// The decompressed size of a text document (one pass when it is compressed).
std::uint64_t text_size(const Corpus& corpus, std::size_t file, const std::string& field) {
  if (corpus.path(file).empty()) return corpus.held_text(file).size();
  if (detect_compression(corpus.path(file)) == Compression::none) return corpus.size_hint(file);
  DocumentReader reader(corpus, file, field);
  std::uint64_t size = 0;
  std::string chunk;
  reader.next_document();
  while (reader.read(chunk, 1 << 20)) {
    size += chunk.size();
    chunk.clear();
  }
  return size;
}

}  // namespace

std::string SplitPlan::document_key(const Corpus& corpus, std::size_t file, std::uint64_t doc) {
  return corpus.format(file) == InputFormat::jsonl ? fmt::format("{}:{}", corpus.key(file), doc)
                                                   : corpus.key(file);
}

bool SplitPlan::validation(const Corpus& corpus, std::size_t file, std::uint64_t doc,
                           std::uint64_t offset) const {
  switch (mode) {
    case Mode::none:
      return false;
    case Mode::files:
    case Mode::inputs:
      return validation_file[file];
    case Mode::documents:
      return hash_chooses_validation(document_key(corpus, file, doc), val_fraction, seed);
    case Mode::tail:
      return file == tail_file && offset >= tail_cut;
  }
  return false;
}

SplitPlan plan_split(const Corpus& corpus, double val_fraction, std::uint64_t seed,
                     const std::string& jsonl_field) {
  SplitPlan plan;
  plan.val_fraction = val_fraction;
  plan.seed = seed;
  const std::size_t n = corpus.size();
  plan.empty_file.assign(n, false);
  plan.validation_file.assign(n, false);
  std::vector<std::size_t> nonempty;
  for (std::size_t i = 0; i < n; ++i) {
    plan.empty_file[i] =
        corpus.path(i).empty() ? corpus.held_text(i).empty() : corpus.size_hint(i) == 0;
    if (!plan.empty_file[i]) nonempty.push_back(i);
  }
  if (corpus.any_validation_inputs()) {
    plan.mode = SplitPlan::Mode::inputs;
    for (std::size_t i = 0; i < n; ++i) plan.validation_file[i] = corpus.validation_input(i);
    return plan;
  }
  if (val_fraction <= 0) return plan;
  const bool any_jsonl = std::any_of(nonempty.begin(), nonempty.end(), [&](std::size_t i) {
    return corpus.format(i) == InputFormat::jsonl;
  });
  if (any_jsonl) {
    plan.mode = SplitPlan::Mode::documents;
    return plan;
  }
  if (nonempty.size() == 1) {
    plan.mode = SplitPlan::Mode::tail;
    const std::size_t f = nonempty[0];
    plan.tail_file = f;
    if (corpus.format(f) == InputFormat::tokens) {
      const std::uint64_t tokens = inspect_token_file(corpus.path(f)).tokens;
      if (tokens < 2) {
        fail(
            "the validation split is empty: '{}' holds {} token(s), too few to split; add data "
            "or pass --val-fraction 0",
            corpus.source(f), tokens);
      }
      const auto cut =
          static_cast<std::uint64_t>(static_cast<double>(tokens) * (1.0 - val_fraction));
      plan.tail_cut = std::clamp<std::uint64_t>(cut, 1, tokens - 1);
      return plan;
    }
    const std::uint64_t size = text_size(corpus, f, jsonl_field);
    TailCutFinder finder(size, val_fraction);
    DocumentReader reader(corpus, f, jsonl_field);
    reader.next_document();
    std::string chunk;
    while (reader.read(chunk, 1 << 20)) {
      finder.add(chunk.data(), chunk.size());
      chunk.clear();
    }
    plan.tail_cut = finder.cut();
    return plan;
  }
  plan.mode = SplitPlan::Mode::files;
  std::vector<std::string> keys;
  for (std::size_t i : nonempty) keys.push_back(corpus.key(i));
  const std::vector<bool> val = choose_validation(keys, val_fraction, seed);
  for (std::size_t k = 0; k < nonempty.size(); ++k) plan.validation_file[nonempty[k]] = val[k];
  return plan;
}

}  // namespace difftx::data
