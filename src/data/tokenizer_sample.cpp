// Sampling training text for the tokenizer (see tokenizer_sample.h).
#include "difftx/data/tokenizer_sample.h"

#include <fmt/format.h>

#include <algorithm>

#include "difftx/core/checksum.h"
#include "difftx/data/document_reader.h"
#include "difftx/data/random.h"
#include "difftx/data/text.h"

namespace difftx::data {

namespace {

// Turns streamed text into sentences: lines, each cut at spaces to at most kSentenceBytes
// (as a whole line would be cut), empty lines dropped.
class SentenceCutter {
 public:
  template <typename Emit>
  void add(std::string_view text, Emit&& emit) {
    while (!text.empty()) {
      const std::size_t eol = text.find('\n');
      line_.append(text.substr(0, eol));
      cut_long(emit, false);
      if (eol == std::string_view::npos) return;
      cut_long(emit, true);
      text.remove_prefix(eol + 1);
    }
  }
  template <typename Emit>
  void end(Emit&& emit) {
    cut_long(emit, true);
  }

 private:
  // Emits the pieces of line_ that are certain: all of it at a line end, else only while more
  // than kSentenceBytes bytes are held (the cut needs to see byte kSentenceBytes).
  template <typename Emit>
  void cut_long(Emit& emit, bool line_end) {
    std::size_t start = 0;
    while (line_.size() - start > kSentenceBytes || (line_end && line_.size() > start)) {
      std::string_view rest = std::string_view(line_).substr(start);
      std::size_t len = rest.size();
      if (len > kSentenceBytes) {
        const std::size_t space = rest.rfind(' ', kSentenceBytes);
        len = space != std::string_view::npos && space > 0
                  ? space
                  : utf8_prefix_length(rest, kSentenceBytes);
      }
      emit(rest.substr(0, len));
      start += len;
    }
    line_.erase(0, start);
  }

  std::string line_;
};

std::uint64_t text_estimate(const Corpus& corpus, std::size_t i) {
  return corpus.path(i).empty() ? corpus.held_text(i).size()
                                : estimate_decompressed_size(corpus.path(i));
}

}  // namespace

TokenizerSample sample_tokenizer_text(const Corpus& corpus, const SplitPlan& plan,
                                      const std::string& jsonl_field, std::uint64_t budget,
                                      std::uint64_t seed, const ProgressOptions& progress_options) {
  // Training files and their (estimated) training text.
  std::vector<std::size_t> files;
  std::vector<std::uint64_t> estimate(corpus.size(), 0);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < corpus.size(); ++i) {
    if (plan.empty_file[i] || corpus.format(i) == InputFormat::tokens) continue;
    const bool whole_validation =
        (plan.mode == SplitPlan::Mode::files || plan.mode == SplitPlan::Mode::inputs) &&
        plan.validation_file[i];
    if (whole_validation) continue;
    estimate[i] = plan.mode == SplitPlan::Mode::tail ? plan.tail_cut : text_estimate(corpus, i);
    files.push_back(i);
    total += estimate[i];
  }
  // More than 4x the budget: a seeded choice of files holding about 4x the budget.
  if (total > 4 * budget) {
    std::vector<std::pair<std::uint64_t, std::size_t>> order;
    for (std::size_t i : files) order.emplace_back(mix64(seed ^ checksum64(corpus.key(i))), i);
    std::sort(order.begin(), order.end());
    files.clear();
    total = 0;
    for (const auto& [h, i] : order) {
      if (total >= 4 * budget) break;
      files.push_back(i);
      total += estimate[i];
    }
    std::sort(files.begin(), files.end());
  }
  const double keep =
      total > budget ? static_cast<double>(budget) / static_cast<double>(total) : 1.0;

  TokenizerSample sample;
  Progress progress("sampling text", static_cast<double>(budget < total ? budget : total),
                    progress_options);
  std::uint64_t counter = 0;
  bool full = false;
  auto add = [&](std::string_view s) {
    if (full) return;
    const std::uint64_t h = mix64(seed ^ mix64(counter++));
    if (keep < 1.0 && static_cast<double>(h >> 11) * 0x1.0p-53 >= keep) return;
    sample.sentences.emplace_back(s);
    sample.bytes += s.size();
    full = sample.bytes >= budget;
  };
  std::string chunk;
  for (std::size_t f : files) {
    if (full) break;
    ++sample.files_read;
    DocumentReader reader(corpus, f, jsonl_field);
    while (!full && reader.next_document()) {
      const std::uint64_t doc = reader.document_number();
      if (plan.mode == SplitPlan::Mode::documents && plan.validation(corpus, f, doc, 0)) continue;
      SentenceCutter cutter;
      StreamTextChecker checker(corpus.format(f) == InputFormat::jsonl
                                    ? fmt::format("{} (line {})", corpus.source(f), doc)
                                    : corpus.source(f));
      std::uint64_t offset = 0;  // of chunk[0] in the document
      chunk.clear();
      bool at_end = false;
      while (!full && !at_end) {
        at_end = !reader.read(chunk, 1 << 20);
        // Whole characters only (the rest waits for the next read), up to the tail cut.
        std::size_t usable = at_end ? chunk.size() : complete_utf8_length(chunk);
        if (plan.mode == SplitPlan::Mode::tail && offset + usable >= plan.tail_cut) {
          usable = static_cast<std::size_t>(plan.tail_cut - offset);
          at_end = true;
        }
        const std::string_view text(chunk.data(), usable);
        checker.check(text);
        cutter.add(text, add);
        offset += usable;
        chunk.erase(0, usable);
        progress.update(
            static_cast<double>(sample.bytes),
            fmt::format("{} lines", format_count(static_cast<double>(sample.sentences.size()))));
      }
      cutter.end(add);
    }
  }
  progress.finish(static_cast<double>(sample.bytes),
                  fmt::format("{} lines from {} file{}",
                              format_count(static_cast<double>(sample.sentences.size())),
                              sample.files_read, sample.files_read == 1 ? "" : "s"));
  return sample;
}

}  // namespace difftx::data
