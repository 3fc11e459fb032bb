// `data prepare` on text and JSONL corpora (see prepare_stages.h): a reader thread streams the
// documents, cuts them into items at unit boundaries and checks their text, while the calling
// thread encodes the previous batch on all cores and appends the ids to the split sinks.
#include <fmt/format.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "difftx/core/error.h"
#include "difftx/data/document_reader.h"
#include "difftx/data/parallel_encoder.h"
#include "difftx/data/text.h"
#include "prepare_stages.h"

namespace difftx::data {

namespace {

constexpr std::size_t kItemBytes = 1 << 20;     // text per encoding work item
constexpr std::size_t kBatchBytes = 16 << 20;   // text per batch handed to the encoders
constexpr std::size_t kLongestUnit = 64 << 20;  // a run without space or newline is cut here
constexpr std::size_t kQueueDepth = 2;          // batches read ahead

struct Item {
  StreamPosition at;
  bool validation = false;
  bool eos = false;    // the end-of-document token (no text)
  bool empty = false;  // an empty document (no tokens, counted as skipped)
  std::string text;
};

struct Batch {
  std::vector<Item> items;
  std::size_t text_bytes = 0;
  std::uint64_t disk_bytes = 0;  // on-disk bytes read up to the end of this batch
};

// A bounded queue of batches between the reader thread and the encoder.
class BatchQueue {
 public:
  void push(Batch b) {
    std::unique_lock<std::mutex> lock(mutex_);
    space_.wait(lock, [&] { return queue_.size() < kQueueDepth || stopped_; });
    if (stopped_) return;
    queue_.push_back(std::move(b));
    ready_.notify_one();
  }
  // The next batch; nothing when the reader finished (rethrows its error).
  std::optional<Batch> pop() {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return !queue_.empty() || done_; });
    if (!queue_.empty()) {
      Batch b = std::move(queue_.front());
      queue_.pop_front();
      space_.notify_one();
      return b;
    }
    if (error_) std::rethrow_exception(error_);
    return std::nullopt;
  }
  void finish(std::exception_ptr error) {
    std::lock_guard<std::mutex> lock(mutex_);
    done_ = true;
    error_ = error;
    ready_.notify_all();
  }
  // The consumer gave up: unblock the reader.
  void stop() {
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;
    space_.notify_all();
  }
  bool stopped() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stopped_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_, space_;
  std::deque<Batch> queue_;
  bool done_ = false, stopped_ = false;
  std::exception_ptr error_;
};

// The reader: documents -> parts -> items, in stream order, skipping what a resumed run has.
class ItemReader {
 public:
  ItemReader(const StageInput& in, BatchQueue& queue) : in_(in), queue_(queue) {}

  void run() {
    const Corpus& corpus = in_.corpus;
    for (std::size_t f = first_needed_file(in_); f < corpus.size(); ++f) {
      if (queue_.stopped()) return;
      if (in_.plan.empty_file[f]) continue;
      DocumentReader reader(corpus, f, in_.options.jsonl_field);
      while (reader.next_document()) {
        read_document(reader, f);
        disk_ = disk_before_ + reader.disk_bytes_read();
      }
      disk_before_ += corpus.size_hint(f);
      disk_ = disk_before_;
    }
    flush();
  }

 private:
  // One document: its parts (two for the tail split, else one), each cut into items and
  // followed by an end-of-document item (or counted as empty).
  void read_document(DocumentReader& reader, std::size_t f) {
    const std::uint64_t doc = reader.document_number();
    const bool tail = in_.plan.mode == SplitPlan::Mode::tail && f == in_.plan.tail_file;
    StreamTextChecker checker(in_.corpus.format(f) == InputFormat::jsonl
                                  ? fmt::format("{} (line {})", in_.corpus.source(f), doc)
                                  : in_.corpus.source(f));
    Part part{f, doc, 0, tail ? in_.plan.tail_cut : UINT64_MAX};
    std::uint64_t offset = 0;  // document offset of pending_[0]
    pending_.clear();
    bool more = true;
    while (more) {
      more = reader.read(pending_, kItemBytes);
      if (offset + pending_.size() >= part.end) {
        // The tail cut is in pending_: the first part ends there, the rest starts the second.
        std::string rest = pending_.substr(static_cast<std::size_t>(part.end - offset));
        pending_.resize(static_cast<std::size_t>(part.end - offset));
        cut_items(part, offset, checker, true);
        end_part(part, part.end);
        part = Part{f, doc, part.end, UINT64_MAX};
        pending_ = std::move(rest);
      }
      cut_items(part, offset, checker, !more);
    }
    end_part(part, offset);
  }

  struct Part {
    std::size_t file;
    std::uint64_t doc, start, end;  // document offsets; end = UINT64_MAX: the document's end
  };

  void end_part(const Part& part, std::uint64_t end) {
    const bool val = in_.plan.validation(in_.corpus, part.file, part.doc, part.start);
    if (end > part.start) {
      add({StreamPosition{part.file, part.doc, end, 0}, val, true, false, {}});
    } else {
      add({StreamPosition{part.file, part.doc, part.start, 0}, val, false, true, {}});
    }
  }

  // Emits the items of pending_ (at document offset `offset`) that are certain: each ends just
  // before the first space or newline at least kItemBytes in (searched up to kLongestUnit, where
  // a run without one is cut at a character boundary); at the end of a part, the rest too.
  // The cuts depend only on the text, not on how it was read.
  void cut_items(const Part& part, std::uint64_t& offset, StreamTextChecker& checker, bool end) {
    const bool val = in_.plan.validation(in_.corpus, part.file, part.doc, part.start);
    std::size_t start = 0;
    for (;;) {
      const std::string_view rest = std::string_view(pending_).substr(start);
      std::size_t len = 0;
      if (rest.size() > kItemBytes) {
        const std::size_t at = rest.substr(0, kLongestUnit).find_first_of(" \n", kItemBytes);
        if (at != std::string_view::npos) {
          len = at;
        } else if (rest.size() > kLongestUnit) {
          len = std::max<std::size_t>(1, complete_utf8_length(rest.substr(0, kLongestUnit)));
        }
      }
      if (len == 0 && end) len = rest.size();
      if (len == 0) break;
      const std::string_view text = rest.substr(0, len);
      checker.check(text);
      add({StreamPosition{part.file, part.doc, offset + start, 0}, val, false, false,
           std::string(text)});
      start += len;
    }
    pending_.erase(0, start);
    offset += start;
  }

  void add(Item item) {
    SplitSink& sink = item.validation ? in_.validation : in_.train;
    std::uint64_t skip = 0;
    if (!sink.wants(item.at, &skip)) return;  // written by the interrupted run
    batch_.text_bytes += item.text.size();
    batch_.items.push_back(std::move(item));
    if (batch_.text_bytes >= kBatchBytes) flush();
  }

  void flush() {
    batch_.disk_bytes = disk_;
    if (!batch_.items.empty()) queue_.push(std::move(batch_));
    batch_ = Batch{};
  }

  const StageInput& in_;
  BatchQueue& queue_;
  Batch batch_;
  std::string pending_;
  std::uint64_t disk_before_ = 0, disk_ = 0;
};

}  // namespace

StageResult encode_text(const StageInput& in, const Tokenizer& tokenizer, int threads) {
  const Corpus& corpus = in.corpus;
  std::uint64_t total = 0;
  for (std::size_t f = first_needed_file(in); f < corpus.size(); ++f) total += corpus.size_hint(f);
  Progress progress(
      in.train.tokens() + in.validation.tokens() > 0 ? "encoding (resumed)" : "encoding",
      static_cast<double>(total), in.progress);
  BatchQueue queue;
  ItemReader reader(in, queue);
  std::thread producer([&] {
    try {
      reader.run();
      queue.finish(nullptr);
    } catch (...) {
      queue.finish(std::current_exception());
    }
  });
  ParallelEncoder encoder(tokenizer, threads);
  std::vector<std::string_view> texts;
  std::vector<std::vector<std::int32_t>> ids;
  const std::int32_t eos[1] = {kEosId};
  StageResult result;
  std::uint64_t text_bytes = 0;
  try {
    while (std::optional<Batch> batch = queue.pop()) {
      texts.clear();
      for (const Item& item : batch->items) {
        if (!item.eos && !item.empty) texts.emplace_back(item.text);
      }
      encoder.run(texts, ids);
      std::size_t k = 0;
      for (const Item& item : batch->items) {
        SplitSink& sink = item.validation ? in.validation : in.train;
        if (item.empty) {
          sink.count_empty(item.at);
          continue;
        }
        std::uint64_t skip = 0;
        sink.wants(item.at, &skip);
        const std::span<const std::int32_t> item_ids =
            item.eos ? std::span<const std::int32_t>(eos) : std::span<const std::int32_t>(ids[k++]);
        sink.append(item.at, item_ids, skip, item.text.size(), kEosId);
      }
      text_bytes += batch->text_bytes;
      result.input_bytes = batch->disk_bytes;
      progress.update(
          static_cast<double>(batch->disk_bytes),
          fmt::format(
              "{} text, {} tokens", format_bytes(static_cast<double>(text_bytes)),
              format_count(static_cast<double>(in.train.tokens() + in.validation.tokens()))));
    }
  } catch (...) {
    queue.stop();
    producer.join();
    throw;
  }
  producer.join();
  result.input_bytes = total;
  progress.finish(
      static_cast<double>(total),
      fmt::format("{} text, {} tokens", format_bytes(static_cast<double>(text_bytes)),
                  format_count(static_cast<double>(in.train.tokens() + in.validation.tokens()))));
  return result;
}

}  // namespace difftx::data
