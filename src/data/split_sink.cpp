// Shard cutting with resumable boundaries (see split_sink.h).
#include "difftx/data/split_sink.h"

#include <algorithm>

#include "difftx/data/data_folder.h"

namespace difftx::data {

SplitSink::SplitSink(std::string prefix, std::filesystem::path dir, std::uint32_t vocab_size,
                     std::uint64_t shard_tokens, SplitProgress resume,
                     std::function<void()> on_shard_start)
    : prefix_(std::move(prefix)),
      dir_(std::move(dir)),
      vocab_(vocab_size),
      limit_(shard_tokens),
      resume_(resume.next),
      on_shard_start_(std::move(on_shard_start)),
      boundary_(std::move(resume)) {
  tokens_ = boundary_.tokens;
  documents_ = boundary_.documents;
  bytes_ = boundary_.bytes;
  skipped_ = boundary_.skipped;
}

SplitSink::~SplitSink() = default;

bool SplitSink::wants(const StreamPosition& item, std::uint64_t* skip) const {
  if (item_before(item, resume_)) return false;
  *skip = same_item(item, resume_) ? resume_.skip : 0;
  return true;
}

void SplitSink::append(const StreamPosition& item, std::span<const std::int32_t> ids,
                       std::uint64_t skip, std::uint64_t text_bytes, std::int64_t document_id) {
  std::uint64_t pos = std::min<std::uint64_t>(skip, ids.size());
  while (pos < ids.size()) {
    if (!writer_) {
      // A shard begins here: this is the boundary a resumed run would start from.
      boundary_.next = item;
      boundary_.next.skip = pos;
      boundary_.tokens = tokens_;
      boundary_.documents = documents_;
      boundary_.bytes = bytes_;
      boundary_.skipped = skipped_;
      writer_ = std::make_unique<ShardWriter>(
          dir_ / shard_file_name(prefix_, boundary_.shards.size()), vocab_);
      writer_documents_ = 0;
      if (on_shard_start_) on_shard_start_();
    }
    const std::uint64_t room = limit_ - writer_->tokens();
    const std::uint64_t n = std::min<std::uint64_t>(room, ids.size() - pos);
    const std::span<const std::int32_t> piece = ids.subspan(pos, n);
    writer_->append(piece);
    if (document_id >= 0) {
      const auto docs = static_cast<std::uint64_t>(
          std::count(piece.begin(), piece.end(), static_cast<std::int32_t>(document_id)));
      writer_documents_ += docs;
      documents_ += docs;
    }
    tokens_ += n;
    pos += n;
    if (writer_->tokens() == limit_) close_shard();
  }
  bytes_ += text_bytes;
}

void SplitSink::count_empty(const StreamPosition& at) {
  if (!item_before(at, resume_)) ++skipped_;
}

void SplitSink::close_shard() {
  writer_->add_documents(writer_documents_);
  const ShardHeader h = writer_->finish();
  boundary_.shards.push_back(shard_entry_json(writer_->path().filename().string(), h));
  writer_.reset();
}

void SplitSink::finish() {
  if (writer_ && writer_->tokens() > 0) close_shard();
  writer_.reset();
}

std::vector<std::string> SplitSink::files() const {
  std::vector<std::string> out;
  for (const auto& s : boundary_.shards) out.push_back(s.at("file").get<std::string>());
  return out;
}

}  // namespace difftx::data
