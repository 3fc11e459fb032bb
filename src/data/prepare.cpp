// The data preparation pipeline: read and check the corpus, split it, train the tokenizer,
// encode in parallel, write shards to a staging folder and move everything into place.
#include "difftx/data/prepare.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/data/brown.h"
#include "difftx/data/random.h"
#include "difftx/data/corpus.h"
#include "difftx/data/shard.h"
#include "difftx/data/text.h"
#include "difftx/data/tokenizer.h"

namespace difftx::data {
namespace fs = std::filesystem;

double PrepareSummary::bytes_per_token() const {
  const std::uint64_t text_tokens = tokens() - documents;
  return text_tokens > 0 ? static_cast<double>(bytes()) / static_cast<double>(text_tokens) : 0.0;
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

constexpr std::uint64_t kHeldTextLimit = 512'000'000;  // keep texts in memory up to this
constexpr std::size_t kSentenceBytes = 4096;            // tokenizer training line length
constexpr std::size_t kItemBytes = 1 << 20;             // encoding work item size
constexpr std::size_t kBatchBytes = 16 << 20;           // text encoded between shard appends

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
      fail("cannot create output folder '{}': '{}' is not a folder; pass another folder with "
           "--out",
           out.string(), probe.string());
    }
  }
  std::random_device rd;
  const fs::path test = probe / fmt::format(".difftx-write-test-{}-{:08x}", ::getpid(), rd());
  if (::mkdir(test.c_str(), 0700) != 0) {
    fail("output folder '{}' cannot be written (creating an entry in '{}' failed: {}): choose "
         "another folder with --out or fix its permissions",
         out.string(), probe.string(), std::strerror(errno));
  }
  ::rmdir(test.c_str());
}

// Documents' texts: all held in memory for corpora up to kHeldTextLimit, else read on use.
class TextStore {
 public:
  TextStore(const Corpus& corpus, bool hold) : corpus_(corpus), held_(hold ? corpus.size() : 0) {}
  std::shared_ptr<const std::string> get(std::size_t i) {
    if (!held_.empty() && held_[i]) return held_[i];
    auto text = std::make_shared<const std::string>(corpus_.text(i));
    if (!held_.empty()) held_[i] = text;
    return text;
  }

 private:
  const Corpus& corpus_;
  std::vector<std::shared_ptr<const std::string>> held_;
};

struct Part {
  std::size_t doc;
  std::size_t begin, end;  // byte range of the document's text
  bool validation;
};

// Lines of the training parts, cut to at most kSentenceBytes at spaces, sampled down to
// `budget` bytes with a seeded hash when there is more text than that.
std::vector<std::string> training_sentences(TextStore& store, const std::vector<Part>& parts,
                                            std::uint64_t train_bytes, std::uint64_t budget,
                                            std::uint64_t seed) {
  const double keep = train_bytes > budget ? static_cast<double>(budget) / train_bytes : 1.0;
  std::vector<std::string> sentences;
  std::uint64_t counter = 0;
  auto add = [&](std::string_view s) {
    const std::uint64_t h = mix64(seed ^ mix64(counter++));
    if (keep < 1.0 && static_cast<double>(h >> 11) * 0x1.0p-53 >= keep) return;
    sentences.emplace_back(s);
  };
  for (const Part& part : parts) {
    if (part.validation) continue;
    const auto text = store.get(part.doc);
    std::string_view rest = std::string_view(*text).substr(part.begin, part.end - part.begin);
    while (!rest.empty()) {
      std::size_t eol = rest.find('\n');
      std::string_view line = rest.substr(0, eol);
      rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
      while (!line.empty()) {
        std::size_t len = line.size();
        if (len > kSentenceBytes) {
          const std::size_t space = line.rfind(' ', kSentenceBytes);
          len = space != std::string_view::npos && space > 0 ? space
                                                             : utf8_prefix_length(line, kSentenceBytes);
        }
        add(line.substr(0, len));
        line.remove_prefix(len);
      }
    }
  }
  return sentences;
}

// Accumulates one split's token stream and writes it as numbered shards into `dir`.
class ShardSink {
 public:
  ShardSink(std::string name, fs::path dir, std::uint32_t vocab, std::uint64_t shard_tokens)
      : name_(std::move(name)), dir_(std::move(dir)), vocab_(vocab), limit_(shard_tokens) {}

  void append(const std::vector<std::int32_t>& ids) {
    buffer_.insert(buffer_.end(), ids.begin(), ids.end());
    while (buffer_.size() >= limit_) write(limit_);
  }
  void end_document() {
    buffer_.push_back(kEosId);
    ++documents_;
    if (buffer_.size() >= limit_) write(limit_);
  }
  void finish() {
    if (!buffer_.empty()) write(buffer_.size());
  }
  std::uint64_t tokens() const { return tokens_; }
  std::uint64_t documents() const { return documents_; }
  const std::vector<std::string>& files() const { return files_; }
  const std::vector<nlohmann::json>& shard_json() const { return shard_json_; }

 private:
  void write(std::size_t count) {
    const std::string file = fmt::format("{}-{:05}.tokens", name_, files_.size());
    std::span<const std::int32_t> tokens(buffer_.data(), count);
    const auto docs = static_cast<std::uint64_t>(std::count(tokens.begin(), tokens.end(), kEosId));
    write_shard(dir_ / file, tokens, vocab_, docs);
    shard_json_.push_back(shard_entry_json(file, ShardReader(dir_ / file, false).header()));
    files_.push_back(file);
    tokens_ += count;
    buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(count));
  }

  std::string name_;
  fs::path dir_;
  std::uint32_t vocab_;
  std::uint64_t limit_;
  std::vector<std::int32_t> buffer_;
  std::uint64_t tokens_ = 0, documents_ = 0;
  std::vector<std::string> files_;
  std::vector<nlohmann::json> shard_json_;
};

// A hidden folder inside the output folder holding the new files until commit() moves them
// into place; removed with everything in it if the preparation fails.
class Staging {
 public:
  explicit Staging(const fs::path& out) : out_(out) {
    ensure_writable_directory(out_);
    std::random_device rd;
    dir_ = out_ / fmt::format(".prepare-{}-{:08x}", ::getpid(), rd());
    std::error_code ec;
    fs::create_directory(dir_, ec);
    if (ec) fail("cannot create staging folder '{}': {}", dir_.string(), ec.message());
  }
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;
  ~Staging() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const fs::path& dir() const { return dir_; }

  // Removes the previous data set (meta.json first, so a half-replaced folder never looks
  // complete), moves the new files in, meta.json last.
  void commit(const std::vector<std::string>& files) {
    std::error_code ec;
    fs::remove(out_ / kMetaFile, ec);
    for (const auto& entry : fs::directory_iterator(out_, ec)) {
      const std::string name = entry.path().filename().string();
      const bool old_shard = entry.path().extension() == ".tokens" &&
                             (name.rfind("train-", 0) == 0 || name.rfind("val-", 0) == 0);
      if (old_shard || name == kTokenizerFile) fs::remove(entry.path(), ec);
    }
    for (const auto& name : files) {
      fs::rename(dir_ / name, out_ / name, ec);
      if (ec) fail("cannot move '{}' into '{}': {}", name, out_.string(), ec.message());
    }
    fs::rename(dir_ / kMetaFile, out_ / kMetaFile, ec);
    if (ec) fail("cannot move '{}' into '{}': {}", kMetaFile, out_.string(), ec.message());
    const int dfd = ::open(out_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);  // make the renames durable
      ::close(dfd);
    }
  }

 private:
  fs::path out_;
  fs::path dir_;
};

struct Item {
  std::size_t part;
  std::string_view text;
};

// Encodes items in parallel (one CachedEncoder per thread); results keep the items' order.
class ParallelEncoder {
 public:
  ParallelEncoder(const Tokenizer& tokenizer, int threads) {
    for (int i = 0; i < threads; ++i) encoders_.emplace_back(tokenizer);
  }
  std::vector<std::vector<std::int32_t>> run(const std::vector<Item>& items) {
    std::vector<std::vector<std::int32_t>> out(items.size());
    std::atomic<std::size_t> next{0};
    auto work = [&](CachedEncoder& enc) {
      for (std::size_t i = next++; i < items.size(); i = next++) {
        out[i].reserve(items[i].text.size() / 3 + 8);
        enc.encode(items[i].text, out[i]);
      }
    };
    const std::size_t n = std::min(encoders_.size(), items.size());
    std::vector<std::thread> pool;
    std::exception_ptr error;
    std::mutex error_mutex;
    for (std::size_t t = 1; t < n; ++t) {
      pool.emplace_back([&, t] {
        try {
          work(encoders_[t]);
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (!error) error = std::current_exception();
        }
      });
    }
    try {
      work(encoders_[0]);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
    for (auto& th : pool) th.join();
    if (error) std::rethrow_exception(error);
    return out;
  }

 private:
  std::vector<CachedEncoder> encoders_;
};

// Cuts [begin, end) of `text` into items of about kItemBytes, each cut just before a space or
// a newline (a unit boundary of Tokenizer::segments, so the ids are the same as unsplit).
void add_items(std::size_t part, std::string_view text, std::vector<Item>& items) {
  while (!text.empty()) {
    std::size_t cut = text.size();
    if (text.size() > kItemBytes) {
      const std::size_t at = text.find_first_of(" \n", kItemBytes);
      if (at != std::string_view::npos) cut = at;
    }
    items.push_back({part, text.substr(0, cut)});
    text.remove_prefix(cut);
  }
}

}  // namespace

PrepareSummary prepare_data(const PrepareOptions& options) {
  const auto t_start = Clock::now();
  if (options.vocab_size < kReservedCount + 64 || options.vocab_size > (1 << 24)) {
    fail("--vocab-size {} is out of range: use a value from {} to {}", options.vocab_size,
         kReservedCount + 64, 1 << 24);
  }
  if (!(options.val_fraction >= 0.0 && options.val_fraction <= 0.5)) {
    fail("--val-fraction {} is out of range: use a value from 0 to 0.5", options.val_fraction);
  }
  if (options.shard_tokens < 1024) {
    fail("--shard-tokens {} is too small: use at least 1024", options.shard_tokens);
  }
  check_output_location(options.out_dir);

  ProgressOptions popts;
  popts.mode = options.progress;
  popts.unit = "B";

  // 1. The corpus, every document read and checked before anything is written.
  const Corpus corpus = options.inputs.empty()
                            ? Corpus::brown(options.brown_dir.empty() ? default_brown_dir()
                                                                      : options.brown_dir)
                            : Corpus::files(options.inputs);
  if (corpus.size() == 0) {
    fail("the corpus is empty: {} holds no files; pass text files or folders with --input",
         corpus.description());
  }
  TextStore store(corpus, corpus.total_size_hint() <= kHeldTextLimit);
  std::vector<std::size_t> docs;  // non-empty documents
  std::vector<std::uint64_t> sizes(corpus.size(), 0);
  PrepareSummary summary;
  summary.corpus = corpus.description();
  {
    Progress progress("checking text", static_cast<double>(corpus.total_size_hint()), popts);
    std::uint64_t done = 0;
    for (std::size_t i = 0; i < corpus.size(); ++i) {
      sizes[i] = store.get(i)->size();
      done += sizes[i];
      if (sizes[i] == 0) {
        ++summary.skipped_empty;
      } else {
        docs.push_back(i);
      }
      progress.update(static_cast<double>(done), fmt::format("{} documents", i + 1));
    }
    progress.finish(fmt::format("{} documents", docs.size()));
  }
  if (docs.empty()) {
    fail("the corpus is empty: {} contains {} file{}, all empty; pass files that hold text",
         corpus.description(), corpus.size(), corpus.size() == 1 ? "" : "s");
  }
  summary.read_seconds = seconds_since(t_start);

  // 2. The split, by document (or, for a single document, its tail).
  std::vector<Part> parts;
  if (docs.size() == 1 && options.val_fraction > 0) {
    const std::size_t d = docs[0];
    const std::size_t cut = single_document_cut(*store.get(d), options.val_fraction);
    parts.push_back({d, 0, cut, false});
    if (cut < sizes[d]) parts.push_back({d, cut, sizes[d], true});
  } else {
    std::vector<std::string> keys;
    for (std::size_t d : docs) keys.push_back(corpus.key(d));
    const std::vector<bool> val = choose_validation(keys, options.val_fraction, options.seed);
    for (std::size_t k = 0; k < docs.size(); ++k) parts.push_back({docs[k], 0, sizes[docs[k]], val[k]});
  }
  std::uint64_t train_bytes = 0;
  for (const Part& p : parts) {
    (p.validation ? summary.validation.bytes : summary.train.bytes) += p.end - p.begin;
    (p.validation ? summary.validation.documents : summary.train.documents) += 1;
  }
  train_bytes = summary.train.bytes;
  if (options.val_fraction > 0 && summary.validation.bytes == 0) {
    fail("the validation split is empty: the corpus is too small to split; add text or pass "
         "--val-fraction 0");
  }
  summary.documents = docs.size();

  // 3. The tokenizer, trained on the training part only.
  const auto t_tok = Clock::now();
  std::vector<std::string> sentences = training_sentences(
      store, parts, train_bytes, options.tokenizer_sample_bytes, options.seed);
  std::uint64_t sample_bytes = 0;
  for (const auto& s : sentences) sample_bytes += s.size();
  Tokenizer tokenizer;
  {
    Progress progress("training tokenizer", static_cast<double>(sample_bytes), popts);
    progress.update(0, fmt::format("BPE, {} pieces", options.vocab_size));
    TokenizerTrainOptions topts;
    topts.vocab_size = options.vocab_size;
    tokenizer = Tokenizer::train(sentences, topts);
    progress.finish(static_cast<double>(sample_bytes),
                    fmt::format("BPE, {} pieces", tokenizer.vocab_size()));
  }
  sentences.clear();
  sentences.shrink_to_fit();
  summary.tokenizer_seconds = seconds_since(t_tok);
  summary.vocab_size = tokenizer.vocab_size();

  // 4. Encoding into shards in a staging folder.
  const auto t_enc = Clock::now();
  Staging staging(options.out_dir);
  const auto vocab = static_cast<std::uint32_t>(tokenizer.vocab_size());
  ShardSink train_sink("train", staging.dir(), vocab, options.shard_tokens);
  ShardSink val_sink("val", staging.dir(), vocab, options.shard_tokens);
  const int threads = options.threads > 0
                          ? options.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  ParallelEncoder encoder(tokenizer, threads);
  {
    Progress progress("encoding", static_cast<double>(summary.bytes()), popts);
    std::uint64_t done = 0, tokens = 0;
    std::size_t next_part = 0;
    while (next_part < parts.size()) {
      // A batch of whole parts (at least one) of about kBatchBytes.
      std::vector<std::shared_ptr<const std::string>> alive;
      std::vector<Item> items;
      std::size_t batch_bytes = 0;
      const std::size_t first = next_part;
      while (next_part < parts.size() && (next_part == first || batch_bytes < kBatchBytes)) {
        const Part& p = parts[next_part];
        alive.push_back(store.get(p.doc));
        add_items(next_part, std::string_view(*alive.back()).substr(p.begin, p.end - p.begin),
                  items);
        batch_bytes += p.end - p.begin;
        ++next_part;
      }
      const auto ids = encoder.run(items);
      std::size_t item = 0;
      for (std::size_t pi = first; pi < next_part; ++pi) {
        ShardSink& sink = parts[pi].validation ? val_sink : train_sink;
        for (; item < items.size() && items[item].part == pi; ++item) {
          sink.append(ids[item]);
          tokens += ids[item].size();
        }
        sink.end_document();
        ++tokens;
      }
      done += batch_bytes;
      progress.update(static_cast<double>(done),
                      fmt::format("{} tokens", format_count(static_cast<double>(tokens))));
    }
    train_sink.finish();
    val_sink.finish();
    progress.finish(fmt::format("{} tokens", format_count(static_cast<double>(tokens))));
  }
  summary.encode_seconds = seconds_since(t_enc);
  summary.train.tokens = train_sink.tokens();
  summary.validation.tokens = val_sink.tokens();

  // 5. Tokenizer and meta.json, then everything moves into the output folder.
  tokenizer.save(staging.dir() / kTokenizerFile);
  std::vector<std::string> val_keys;
  for (const Part& p : parts) {
    if (p.validation) val_keys.push_back(corpus.key(p.doc));
  }
  summary.seconds = seconds_since(t_start);
  auto split_json = [](const SplitSummary& s, const ShardSink& sink) {
    return nlohmann::json{{"documents", s.documents},
                          {"bytes", s.bytes},
                          {"tokens", s.tokens},
                          {"shards", sink.shard_json()}};
  };
  const nlohmann::json meta = {
      {"format", kMetaFormat},
      {"version", kMetaVersion},
      {"corpus", {{"kind", corpus.kind()},
                  {"description", corpus.description()},
                  {"documents", summary.documents},
                  {"skipped_empty_files", summary.skipped_empty}}},
      {"tokenizer",
       {{"file", kTokenizerFile},
        {"type", "sentencepiece-bpe-byte-fallback"},
        {"vocab_size", tokenizer.vocab_size()},
        {"fingerprint", tokenizer.fingerprint()},
        {"reserved_ids",
         {{"pad", kPadId}, {"bos", kBosId}, {"eos", kEosId}, {"unk", kUnkId},
          {"newline", kNewlineId}, {"bytes", {kFirstByteId, kFirstByteId + 255}}}}}},
      {"document_separator", "eos after every document"},
      {"split",
       {{"rule", split_rule_text(options.val_fraction, options.seed)},
        {"seed", options.seed},
        {"val_fraction", options.val_fraction},
        {"validation_documents", val_keys}}},
      {"train", split_json(summary.train, train_sink)},
      {"validation", split_json(summary.validation, val_sink)},
      {"bytes_per_token", summary.bytes_per_token()},
  };
  write_file_atomic(staging.dir() / kMetaFile, meta.dump(2) + "\n");
  std::vector<std::string> files = train_sink.files();
  files.insert(files.end(), val_sink.files().begin(), val_sink.files().end());
  files.push_back(kTokenizerFile);
  staging.commit(files);
  for (const auto& f : train_sink.files()) summary.train.shards.push_back(options.out_dir / f);
  for (const auto& f : val_sink.files()) summary.validation.shards.push_back(options.out_dir / f);
  summary.tokenizer_path = options.out_dir / kTokenizerFile;
  summary.meta_path = options.out_dir / kMetaFile;
  summary.seconds = seconds_since(t_start);
  return summary;
}

std::string format_summary(const PrepareSummary& s) {
  std::string out = fmt::format(
      "prepared {}\n"
      "  documents  {} ({} train, {} validation{})\n"
      "  bytes      {} ({} train, {} validation)\n"
      "  tokens     {} ({} train, {} validation; one EOS per document)\n"
      "  bytes/token {:.3f}\n"
      "  seconds    {:.2f} (read {:.2f}, tokenizer {:.2f}, encode+write {:.2f})\n"
      "  tokenizer  {} ({} pieces)\n",
      s.corpus, s.documents, s.train.documents, s.validation.documents,
      s.skipped_empty > 0 ? fmt::format("; {} empty files skipped", s.skipped_empty) : "",
      s.bytes(), s.train.bytes, s.validation.bytes, s.tokens(), s.train.tokens,
      s.validation.tokens, s.bytes_per_token(), s.seconds, s.read_seconds, s.tokenizer_seconds,
      s.encode_seconds, s.tokenizer_path.string(), s.vocab_size);
  for (const auto& p : s.train.shards) out += fmt::format("  train      {}\n", p.string());
  for (const auto& p : s.validation.shards) out += fmt::format("  validation {}\n", p.string());
  out += fmt::format("  meta       {}\n", s.meta_path.string());
  return out;
}

}  // namespace difftx::data
