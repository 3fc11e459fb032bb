// `data prepare` on token files: ids copied into shards in fixed chunks (see prepare_stages.h).
#include <fmt/format.h>

#include <vector>

#include "difftx/core/error.h"
#include "difftx/data/token_file.h"
#include "prepare_stages.h"

namespace difftx::data {

namespace {
constexpr std::uint64_t kChunkTokens = 1 << 20;
}  // namespace

std::size_t first_needed_file(const StageInput& in) {
  const std::uint64_t a = in.train.progress().next.file;
  const std::uint64_t b = in.validation.progress().next.file;
  return static_cast<std::size_t>(std::min(a, b));
}

StageResult copy_token_files(const StageInput& in, std::uint32_t vocab_size) {
  StageResult result;
  const Corpus& corpus = in.corpus;
  std::uint64_t total = 0, done = 0;
  const std::size_t first = first_needed_file(in);
  for (std::size_t f = first; f < corpus.size(); ++f) total += corpus.size_hint(f);
  Progress progress("copying tokens", static_cast<double>(total), in.progress);
  std::vector<std::int32_t> ids(kChunkTokens);
  for (std::size_t f = first; f < corpus.size(); ++f) {
    if (in.plan.empty_file[f]) continue;
    TokenFileReader reader(corpus.path(f));
    const std::uint64_t n = reader.info().tokens;
    // Parts: [0, cut) and [cut, n) for the single file of the tail split, else [0, n).
    std::vector<std::uint64_t> starts = {0};
    if (in.plan.mode == SplitPlan::Mode::tail && f == in.plan.tail_file)
      starts.push_back(in.plan.tail_cut);
    starts.push_back(n);
    for (std::size_t part = 0; part + 1 < starts.size(); ++part) {
      const bool val = in.plan.validation(corpus, f, 0, starts[part]);
      SplitSink& sink = val ? in.validation : in.train;
      for (std::uint64_t at = starts[part]; at < starts[part + 1]; at += kChunkTokens) {
        const StreamPosition item{f, 0, at, 0};
        std::uint64_t skip = 0;
        if (!sink.wants(item, &skip)) continue;
        const auto count =
            static_cast<std::size_t>(std::min<std::uint64_t>(kChunkTokens, starts[part + 1] - at));
        reader.seek(at);
        const std::size_t got = reader.read(ids.data(), count);
        if (got != count)
          fail("token file '{}' ended early at token {}", corpus.source(f), at + got);
        for (std::size_t i = 0; i < count; ++i) {
          if (static_cast<std::uint32_t>(ids[i]) >= vocab_size) {
            fail(
                "token file '{}' holds id {} at token {}, outside the vocabulary of {}: pass "
                "--vocab-size of the tokenizer that made it (50257 for GPT-2) or its model "
                "with --tokenizer",
                corpus.source(f), ids[i], at + i, vocab_size);
          }
        }
        sink.append(item, std::span<const std::int32_t>(ids.data(), count), skip, 0,
                    in.options.eot_id);
        progress.update(static_cast<double>(done + reader.disk_bytes_read()),
                        fmt::format("{} tokens", format_count(static_cast<double>(
                                                     in.train.tokens() + in.validation.tokens()))));
      }
    }
    done += corpus.size_hint(f);
    result.input_bytes += corpus.size_hint(f);
  }
  progress.finish(
      static_cast<double>(done),
      fmt::format("{} tokens",
                  format_count(static_cast<double>(in.train.tokens() + in.validation.tokens()))));
  return result;
}

}  // namespace difftx::data
