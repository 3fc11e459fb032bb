// Source documents, their split and the tokenizer of text tasks (see synth_source.h).
#include "difftx/data/synth_source.h"

#include <algorithm>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/data/brown.h"
#include "difftx/data/corpus.h"
#include "difftx/data/file_check.h"
#include "difftx/data/random.h"
#include "difftx/data/text.h"

namespace difftx::data {
namespace fs = std::filesystem;

std::vector<SourceDocument> load_source_documents(const std::vector<fs::path>& inputs,
                                                  const fs::path& brown_dir) {
  std::vector<SourceDocument> docs;
  if (inputs.empty()) {
    for (const BrownFile& f :
         list_brown_files(brown_dir.empty() ? default_brown_dir() : brown_dir)) {
      const std::string tagged = read_file_text(f.path);
      require_text(tagged, f.path.string());
      docs.push_back({f.id, f.category, brown_to_text(tagged), brown_sentences(tagged)});
    }
    return docs;
  }
  const Corpus corpus = Corpus::files(inputs);
  for (std::size_t i = 0; i < corpus.size(); ++i) {
    if (corpus.format(i) != InputFormat::text) {
      fail(
          "'{}' is not a plain text file: task data is made from text files (one document "
          "each)",
          corpus.source(i));
    }
    SourceDocument d;
    d.key = corpus.key(i);
    d.text = corpus.text(i);
    if (!d.text.empty()) docs.push_back(std::move(d));
  }
  if (docs.empty()) fail("the source text is empty: pass text files with --input");
  return docs;
}

SourceSplit split_source_documents(const std::vector<SourceDocument>& docs,
                                   double held_out_fraction, std::uint64_t seed) {
  std::vector<std::string> keys;
  for (const auto& d : docs) keys.push_back(d.key);
  const std::vector<bool> held = choose_validation(keys, held_out_fraction, seed);
  SourceSplit split;
  std::vector<std::size_t> held_out;
  for (std::size_t i = 0; i < docs.size(); ++i) (held[i] ? held_out : split.train).push_back(i);
  if (held_out.size() < 2) {
    fail(
        "only {} of {} source documents are held out: validation and test need at least 2; "
        "raise --val-fraction or add documents",
        held_out.size(), docs.size());
  }
  Rng rng(mix64(seed ^ 0x7e57ULL));
  rng.shuffle(held_out);
  for (std::size_t k = 0; k < held_out.size(); ++k) {
    (k % 2 == 0 ? split.validation : split.test).push_back(held_out[k]);
  }
  std::sort(split.validation.begin(), split.validation.end());
  std::sort(split.test.begin(), split.test.end());
  return split;
}

void append_training_lines(const std::string& text, std::vector<std::string>& lines) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    while (!line.empty()) {
      std::size_t len = line.size();
      if (len > 4096) {
        const std::size_t space = line.rfind(' ', 4096);
        len = space != std::string_view::npos && space > 0 ? space : utf8_prefix_length(line, 4096);
      }
      lines.emplace_back(line.substr(0, len));
      line.remove_prefix(len);
    }
    pos = end + 1;
  }
}

Tokenizer task_tokenizer(const fs::path& reuse, int vocab_size,
                         const std::vector<std::string>& lines, std::string* source) {
  if (!reuse.empty()) {
    require_regular_file(reuse, "tokenizer model",
                         "pass a SentencePiece model file, e.g. a checkpoint's tokenizer.model");
    *source = "reused " + reuse.string();
    return Tokenizer::load(reuse);
  }
  TokenizerTrainOptions options;
  options.vocab_size = vocab_size;
  *source = "trained on the training split";
  return Tokenizer::train(lines, options);
}

}  // namespace difftx::data
