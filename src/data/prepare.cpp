// The data preparation pipeline: check the options and the corpus, plan the split, get a
// tokenizer (reused, resumed or trained on a sample), stream the corpus into shards in a
// resumable staging folder, write meta.json and move everything into place.
#include "difftx/data/prepare.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "difftx/core/atomic_file.h"
#include "difftx/core/checksum.h"
#include "difftx/core/error.h"
#include "difftx/data/brown.h"
#include "difftx/data/corpus.h"
#include "difftx/data/file_check.h"
#include "difftx/data/prepare_state.h"
#include "difftx/data/split_plan.h"
#include "difftx/data/split_sink.h"
#include "difftx/data/tokenizer.h"
#include "difftx/data/tokenizer_sample.h"
#include "prepare_stages.h"

namespace difftx::data {
namespace fs = std::filesystem;
using nlohmann::json;

double PrepareSummary::bytes_per_token() const {
  if (token_input) return 0.0;
  const std::uint64_t text_tokens = tokens() - train.documents - validation.documents;  // no EOS
  return text_tokens > 0 ? static_cast<double>(bytes()) / static_cast<double>(text_tokens) : 0.0;
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Fails early, before any work, if `out` cannot become a writable folder: probes the folder
// (or its nearest existing ancestor) by creating and removing a uniquely named entry, which
// also catches read-only file systems and root-proof folders. Leaves nothing behind.
void check_output_location(const fs::path& out) {
  std::error_code ec;
  fs::path probe = out.empty() ? fs::path(".") : out;
  if (fs::exists(probe, ec)) {
    if (!fs::is_directory(probe, ec)) {
      fail("output '{}' exists but is not a folder: pass a folder with --out", out.string());
    }
  } else {
    probe = fs::absolute(probe, ec);
    while (!fs::exists(probe, ec) && probe.has_relative_path()) probe = probe.parent_path();
    if (!fs::is_directory(probe, ec)) {
      fail(
          "cannot create output folder '{}': '{}' is not a folder; pass another folder with "
          "--out",
          out.string(), probe.string());
    }
  }
  std::random_device rd;
  const fs::path test = probe / fmt::format(".difftx-write-test-{}-{:08x}", ::getpid(), rd());
  if (::mkdir(test.c_str(), 0700) != 0) {
    fail(
        "output folder '{}' cannot be written (creating an entry in '{}' failed: {}): choose "
        "another folder with --out or fix its permissions",
        out.string(), probe.string(), std::strerror(errno));
  }
  ::rmdir(test.c_str());
}

void check_options(const PrepareOptions& o) {
  if (!o.inputs.empty() && o.out_dir.empty()) {
    fail(
        "--input needs --out: the default output folder {} belongs to the Brown corpus; pass "
        "--out DIR for the prepared data of your files (e.g. --out data/mycorpus)",
        kDefaultOutDir);
  }
  if (o.inputs.empty() && !o.validation_inputs.empty()) {
    fail("--val-input needs --input: pass the training files with --input");
  }
  if (o.vocab_size != 0 && (o.vocab_size < kReservedCount + 64 || o.vocab_size > (1 << 24))) {
    fail("--vocab-size {} is out of range: use a value from {} to {}", o.vocab_size,
         kReservedCount + 64, 1 << 24);
  }
  if (!(o.val_fraction >= 0.0 && o.val_fraction <= 0.5)) {
    fail("--val-fraction {} is out of range: use a value from 0 to 0.5", o.val_fraction);
  }
  if (o.shard_tokens < 1024) {
    fail("--shard-tokens {} is too small: use at least 1024", o.shard_tokens);
  }
  if (o.tokenizer_sample_bytes < 1024) {
    fail("--tokenizer-sample-bytes {} is too small: use at least 1024", o.tokenizer_sample_bytes);
  }
  if (o.jsonl_field.empty()) fail("--jsonl-field must name a field, e.g. --jsonl-field text");
  if (o.threads < 0) fail("--threads {} is negative: use 0 for all cores", o.threads);
  if (o.eot_id < -1 || o.eot_id >= (std::int64_t{1} << 24)) {
    fail("--eot-id {} is out of range", o.eot_id);
  }
}

// What a resumed run must share with the interrupted one: every option that changes the
// output, and each input file's name, size and modification time.
std::string preparation_key(const Corpus& corpus, const PrepareOptions& o,
                            const std::string& tokenizer_fp) {
  json inputs = json::array();
  for (std::size_t i = 0; i < corpus.size(); ++i) {
    json entry = {{"key", corpus.key(i)},
                  {"source", corpus.source(i)},
                  {"size", corpus.size_hint(i)},
                  {"validation", corpus.validation_input(i)}};
    if (!corpus.path(i).empty()) {
      struct stat st {};
      if (::stat(corpus.path(i).c_str(), &st) == 0) {
        entry["mtime_ns"] =
            static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
      }
    } else {
      entry["text"] = hex64(checksum64(corpus.held_text(i)));
    }
    inputs.push_back(entry);
  }
  const json key = {{"inputs", inputs},
                    {"vocab_size", o.vocab_size},
                    {"tokenizer", tokenizer_fp},
                    {"jsonl_field", o.jsonl_field},
                    {"eot_id", o.eot_id},
                    {"val_fraction", o.val_fraction},
                    {"seed", o.seed},
                    {"shard_tokens", o.shard_tokens},
                    {"tokenizer_sample_bytes", o.tokenizer_sample_bytes},
                    {"shard_version", ShardHeader::kVersion}};
  return hex64(checksum64(key.dump()));
}

const char* split_mode_name(SplitPlan::Mode m) {
  switch (m) {
    case SplitPlan::Mode::none:
      return "none";
    case SplitPlan::Mode::files:
      return "files";
    case SplitPlan::Mode::documents:
      return "documents";
    case SplitPlan::Mode::tail:
      return "tail";
    case SplitPlan::Mode::inputs:
      return "inputs";
  }
  return "?";
}

json tokenizer_json(const Tokenizer& tok, const std::string& source) {
  return {{"file", kTokenizerFile},
          {"type", "sentencepiece-bpe-byte-fallback"},
          {"vocab_size", tok.vocab_size()},
          {"fingerprint", tok.fingerprint()},
          {"source", source},
          {"reserved_ids",
           {{"pad", kPadId},
            {"bos", kBosId},
            {"eos", kEosId},
            {"unk", kUnkId},
            {"newline", kNewlineId},
            {"bytes", {kFirstByteId, kFirstByteId + 255}}}}};
}

}  // namespace

PrepareSummary prepare_data(const PrepareOptions& options_in) {
  const auto t_start = Clock::now();
  check_options(options_in);
  PrepareOptions options = options_in;
  if (options.out_dir.empty()) options.out_dir = kDefaultOutDir;
  check_output_location(options.out_dir);

  ProgressOptions popts;
  popts.mode = options.progress;
  popts.unit = "B";

  // 1. The corpus and its split.
  const Corpus corpus =
      options.inputs.empty()
          ? Corpus::brown(options.brown_dir.empty() ? default_brown_dir() : options.brown_dir)
          : Corpus::files(options.inputs, options.validation_inputs);
  if (corpus.size() == 0) {
    fail("the corpus is empty: {} holds no files; pass text files or folders with --input",
         corpus.description());
  }
  std::size_t token_files = 0;
  for (std::size_t i = 0; i < corpus.size(); ++i) {
    token_files += corpus.format(i) == InputFormat::tokens;
  }
  const bool token_input = token_files > 0;
  if (token_input && token_files != corpus.size()) {
    fail(
        "the inputs mix token files (*.bin) with text: prepare them separately (token files "
        "already carry the ids of their own tokenizer)");
  }
  if (!token_input && options.eot_id >= 0) {
    fail("--eot-id is for token files (*.bin); text documents are ended by difftx's EOS");
  }
  Tokenizer reused;
  if (!options.tokenizer.empty()) {
    require_regular_file(options.tokenizer, "tokenizer model",
                         "pass a SentencePiece model file, e.g. a checkpoint's tokenizer.model");
    reused = Tokenizer::load(options.tokenizer);
    if (options.vocab_size != 0 && options.vocab_size != reused.vocab_size()) {
      fail(
          "--vocab-size {} differs from the {} pieces of --tokenizer '{}': leave --vocab-size "
          "out when reusing a tokenizer",
          options.vocab_size, reused.vocab_size(), options.tokenizer.string());
    }
  }
  if (token_input && options.vocab_size == 0 && !reused.loaded()) {
    fail(
        "token files need the vocabulary size of the tokenizer that made them: pass "
        "--vocab-size N (50257 for GPT-2 token files) or its model with --tokenizer");
  }
  if (!token_input && options.vocab_size == 0) options.vocab_size = kDefaultVocabSize;
  const SplitPlan plan =
      plan_split(corpus, options.val_fraction, options.seed, options.jsonl_field);
  bool any_nonempty = false;
  for (std::size_t i = 0; i < corpus.size(); ++i)
    any_nonempty = any_nonempty || !plan.empty_file[i];
  if (!any_nonempty) {
    fail("the corpus is empty: {} contains {} file{}, all empty; pass files that hold text",
         corpus.description(), corpus.size(), corpus.size() == 1 ? "" : "s");
  }
  PrepareSummary summary;
  summary.corpus = corpus.description();
  summary.token_input = token_input;
  summary.read_seconds = seconds_since(t_start);

  // 2. The staging folder (resumed when an interrupted run had the same options and inputs).
  const std::string key =
      preparation_key(corpus, options, reused.loaded() ? reused.fingerprint() : "");
  PrepareStaging staging(options.out_dir, key);
  if (!staging.note().empty()) {
    fmt::print(stderr, "difftx: {}: {}\n", (options.out_dir / kPartialDir).string(),
               staging.note());
  }

  // 3. The tokenizer: resumed, reused or trained on a sample of the training text.
  const auto t_tok = Clock::now();
  Tokenizer tokenizer;
  std::string tokenizer_source = "none";
  if (staging.resumed() && staging.tokenizer_fingerprint() != "none") {
    tokenizer = Tokenizer::load(staging.dir() / kTokenizerFile);
    if (tokenizer.fingerprint() != staging.tokenizer_fingerprint()) {
      fail("the interrupted run's tokenizer in '{}' was changed: remove that folder to start over",
           staging.dir().string());
    }
  } else if (reused.loaded()) {
    tokenizer = reused;
    tokenizer.save(staging.dir() / kTokenizerFile);
  } else if (!token_input) {
    const TokenizerSample sample = sample_tokenizer_text(
        corpus, plan, options.jsonl_field, options.tokenizer_sample_bytes, options.seed, popts);
    if (sample.sentences.empty())
      fail("cannot train a tokenizer: the training split holds no text");
    Progress progress("training tokenizer", static_cast<double>(sample.bytes), popts);
    progress.update(0, fmt::format("BPE, {} pieces", options.vocab_size));
    TokenizerTrainOptions topts;
    topts.vocab_size = options.vocab_size;
    tokenizer = Tokenizer::train(sample.sentences, topts);
    progress.finish(static_cast<double>(sample.bytes),
                    fmt::format("BPE, {} pieces", tokenizer.vocab_size()));
    tokenizer.save(staging.dir() / kTokenizerFile);
  }
  if (tokenizer.loaded()) {
    tokenizer_source = reused.loaded() ? "reused " + options.tokenizer.string()
                                       : "trained on a sample of the training text";
  }
  summary.tokenizer_seconds = seconds_since(t_tok);
  const std::string tokenizer_fp = tokenizer.loaded() ? tokenizer.fingerprint() : "none";
  const auto vocab =
      static_cast<std::uint32_t>(tokenizer.loaded() ? tokenizer.vocab_size() : options.vocab_size);
  summary.vocab_size = static_cast<int>(vocab);
  summary.tokenizer_source = tokenizer_source;

  // 4. The corpus streamed into shards; the state is saved whenever a shard begins.
  const auto t_enc = Clock::now();
  SplitSink* sinks[2] = {nullptr, nullptr};
  auto save_state = [&] {
    if (sinks[0] && sinks[1])
      staging.save(tokenizer_fp, sinks[0]->progress(), sinks[1]->progress());
  };
  SplitSink train("train", staging.dir(), vocab, options.shard_tokens, staging.progress("train"),
                  save_state);
  SplitSink validation("val", staging.dir(), vocab, options.shard_tokens,
                       staging.progress("validation"), save_state);
  sinks[0] = &train;
  sinks[1] = &validation;
  summary.resumed = staging.resumed();
  summary.resumed_shards = train.shards().size() + validation.shards().size();
  if (summary.resumed) {
    fmt::print(stderr, "difftx: resuming the interrupted preparation in '{}': {} shard{} kept\n",
               staging.dir().string(), summary.resumed_shards,
               summary.resumed_shards == 1 ? "" : "s");
  }
  save_state();
  const StageInput stage{corpus, plan, options, train, validation, popts};
  const int threads = options.threads > 0
                          ? options.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const StageResult result =
      token_input ? copy_token_files(stage, vocab) : encode_text(stage, tokenizer, threads);
  train.finish();
  validation.finish();
  summary.encode_seconds = seconds_since(t_enc);
  summary.input_bytes = result.input_bytes;
  if (options.val_fraction > 0 && plan.mode != SplitPlan::Mode::none && validation.tokens() == 0) {
    fail(
        "the validation split is empty: the corpus is too small to split; add text or pass "
        "--val-fraction 0");
  }
  if (plan.mode == SplitPlan::Mode::inputs && validation.tokens() == 0) {
    fail("the validation split is empty: the --val-input files hold no text");
  }
  if (train.tokens() == 0) fail("the training split is empty: the inputs hold no training text");

  auto fill = [&](SplitSummary& s, const SplitSink& sink) {
    s.documents = sink.documents();
    s.bytes = sink.bytes();
    s.tokens = sink.tokens();
    for (const auto& f : sink.files()) s.shards.push_back(options.out_dir / f);
  };
  fill(summary.train, train);
  fill(summary.validation, validation);
  // The tail split puts one document's two parts in the two splits.
  summary.documents = summary.train.documents + summary.validation.documents -
                      (plan.mode == SplitPlan::Mode::tail && !token_input ? 1 : 0);
  std::uint64_t empty_files = 0;
  for (std::size_t i = 0; i < corpus.size(); ++i) empty_files += plan.empty_file[i];
  summary.skipped_empty = empty_files + train.skipped() + validation.skipped();

  // 5. meta.json, then everything moves into the output folder.
  json validation_keys = json::array();
  if (plan.mode == SplitPlan::Mode::files || plan.mode == SplitPlan::Mode::inputs) {
    for (std::size_t i = 0; i < corpus.size(); ++i) {
      if (plan.validation_file[i] && !plan.empty_file[i]) validation_keys.push_back(corpus.key(i));
    }
  } else if (plan.mode == SplitPlan::Mode::tail) {
    validation_keys.push_back(corpus.key(plan.tail_file));
  }
  auto split_json = [](const SplitSink& sink) {
    return json{{"documents", sink.documents()},
                {"bytes", sink.bytes()},
                {"tokens", sink.tokens()},
                {"shards", sink.shards()}};
  };
  std::string separator = "eos after every document";
  if (token_input) {
    separator = options.eot_id >= 0 ? fmt::format("id {} (from the token files)", options.eot_id)
                                    : "none (token files, copied as they are)";
  }
  json meta = {
      {"format", kMetaFormat},
      {"version", kMetaVersion},
      {"corpus",
       {{"kind", corpus.kind()},
        {"description", corpus.description()},
        {"files", corpus.size()},
        {"documents", summary.documents},
        {"skipped_empty", summary.skipped_empty}}},
      {"tokenizer", tokenizer.loaded() ? tokenizer_json(tokenizer, tokenizer_source) : json()},
      {"vocab_size", vocab},
      {"document_separator", separator},
      {"split",
       {{"rule", split_rule_text(options.val_fraction, options.seed)},
        {"mode", split_mode_name(plan.mode)},
        {"seed", options.seed},
        {"val_fraction", options.val_fraction},
        {"validation_documents", validation_keys}}},
      {"train", split_json(train)},
      {"validation", split_json(validation)},
      {"bytes_per_token", summary.bytes_per_token()},
  };
  if (!token_input && options.jsonl_field != "text")
    meta["corpus"]["jsonl_field"] = options.jsonl_field;
  write_file_atomic(staging.dir() / kMetaFile, meta.dump(2) + "\n");
  std::vector<std::string> files = train.files();
  for (const auto& f : validation.files()) files.push_back(f);
  if (tokenizer.loaded()) files.push_back(kTokenizerFile);
  staging.commit(files);
  if (tokenizer.loaded()) summary.tokenizer_path = options.out_dir / kTokenizerFile;
  summary.meta_path = options.out_dir / kMetaFile;
  summary.seconds = seconds_since(t_start);
  return summary;
}

std::string format_summary(const PrepareSummary& s) {
  const double mb_per_s =
      s.encode_seconds > 0 ? static_cast<double>(s.input_bytes) / 1e6 / s.encode_seconds : 0.0;
  std::string out = fmt::format(
      "prepared {}\n"
      "  documents  {} ({} train, {} validation{})\n"
      "  bytes      {} ({} train, {} validation)\n"
      "  tokens     {} ({} train, {} validation{})\n",
      s.corpus, s.documents, s.train.documents, s.validation.documents,
      s.skipped_empty > 0 ? fmt::format("; {} empty skipped", s.skipped_empty) : "", s.bytes(),
      s.train.bytes, s.validation.bytes, s.tokens(), s.train.tokens, s.validation.tokens,
      s.token_input ? "" : "; one EOS per document");
  if (!s.token_input) out += fmt::format("  bytes/token {:.3f}\n", s.bytes_per_token());
  out += fmt::format(
      "  seconds    {:.2f} (read {:.2f}, tokenizer {:.2f}, encode+write {:.2f}; {:.1f} MB/s of "
      "input)\n",
      s.seconds, s.read_seconds, s.tokenizer_seconds, s.encode_seconds, mb_per_s);
  if (s.resumed) {
    out += fmt::format("  resumed    an interrupted run ({} shards were kept)\n", s.resumed_shards);
  }
  if (!s.tokenizer_path.empty()) {
    out += fmt::format("  tokenizer  {} ({} pieces, {})\n", s.tokenizer_path.string(), s.vocab_size,
                       s.tokenizer_source);
  } else {
    out += fmt::format("  tokenizer  none (token files; vocabulary {})\n", s.vocab_size);
  }
  for (const auto& p : s.train.shards) out += fmt::format("  train      {}\n", p.string());
  for (const auto& p : s.validation.shards) out += fmt::format("  validation {}\n", p.string());
  out += fmt::format("  meta       {}\n", s.meta_path.string());
  return out;
}

}  // namespace difftx::data
