// The streaming stage of `data prepare` (private to src/data): input documents -> items ->
// ids -> the two split sinks, for text corpora (parallel encoding, reading overlapped with
// encoding) and for token files (ids copied).
#pragma once

#include <cstdint>

#include "difftx/core/progress.h"
#include "difftx/data/corpus.h"
#include "difftx/data/prepare.h"
#include "difftx/data/split_plan.h"
#include "difftx/data/split_sink.h"
#include "difftx/data/tokenizer.h"

namespace difftx::data {

struct StageInput {
  const Corpus& corpus;
  const SplitPlan& plan;
  const PrepareOptions& options;
  SplitSink& train;
  SplitSink& validation;
  ProgressOptions progress;
};

struct StageResult {
  std::uint64_t input_bytes = 0;  // on-disk bytes read in this run
};

// Text and JSONL corpora: encodes every document's parts (EOS after each) on `threads` threads.
StageResult encode_text(const StageInput& in, const Tokenizer& tokenizer, int threads);

// Token files: copies the ids (checked against `vocab_size`), counting documents by eot_id.
StageResult copy_token_files(const StageInput& in, std::uint32_t vocab_size);

// The first corpus file either split still needs (files before it are not read at all).
std::size_t first_needed_file(const StageInput& in);

}  // namespace difftx::data
