// Source text for text tasks (`data synth needle-mix`, `icl`): the documents of the Brown
// corpus (with their categories and sentences) or of the user's text files, held in memory,
// and the train / validation / test split of those documents.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "difftx/data/tokenizer.h"

namespace difftx::data {

struct SourceDocument {
  std::string key;                     // Brown id or the file's key
  std::string category;                // Brown category ("news", ...); empty for files
  std::string text;                    // plain text (brown_to_text for Brown)
  std::vector<std::string> sentences;  // Brown only: one per tagged line (brown_sentences)
};

// Brown (inputs empty; brown_dir empty = the default installation) or the text files of
// `inputs` (read whole and checked to be UTF-8).
std::vector<SourceDocument> load_source_documents(const std::vector<std::filesystem::path>& inputs,
                                                  const std::filesystem::path& brown_dir);

// Documents split by the seeded rule of `data prepare` (choose_validation with
// `held_out_fraction`); the held-out ones alternate (in that rule's order) between validation
// and test. Throws if fewer than 2 are held out.
struct SourceSplit {
  std::vector<std::size_t> train, validation, test;  // indices into the documents
};
SourceSplit split_source_documents(const std::vector<SourceDocument>& docs,
                                   double held_out_fraction, std::uint64_t seed);

// Lines of `text` for tokenizer training (cut at spaces to at most 4096 bytes), appended.
void append_training_lines(const std::string& text, std::vector<std::string>& lines);

// The tokenizer of a text task: `reuse` loaded if given, else one trained on `lines`.
Tokenizer task_tokenizer(const std::filesystem::path& reuse, int vocab_size,
                         const std::vector<std::string>& lines, std::string* source);

}  // namespace difftx::data
