// Task data folders (see synth_writer.h).
#include "difftx/data/synth_writer.h"

#include <algorithm>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/data/data_folder.h"

namespace difftx::data {
namespace fs = std::filesystem;
using nlohmann::json;

SynthSplit::SynthSplit(fs::path dir, std::string prefix, std::uint32_t vocab_size,
                       ShardLayout layout, std::uint64_t shard_tokens)
    : dir_(std::move(dir)),
      prefix_(std::move(prefix)),
      vocab_(vocab_size),
      layout_(layout),
      limit_(shard_tokens) {}

SynthSplit::~SynthSplit() = default;

void SynthSplit::add(std::span<const std::int32_t> ids, std::span<const std::uint8_t> labels) {
  if (writer_ && writer_->tokens() + ids.size() > limit_) close();
  if (!writer_) {
    writer_ = std::make_unique<ShardWriter>(dir_ / shard_file_name(prefix_, shards_.size()), vocab_,
                                            layout_);
    writer_examples_ = 0;
  }
  writer_->append(ids, labels);
  ++writer_examples_;
  ++examples_;
  tokens_ += ids.size();
  labelled_ += layout_.label_mask
                   ? static_cast<std::uint64_t>(std::count(labels.begin(), labels.end(), 1))
                   : ids.size();
}

void SynthSplit::close() {
  writer_->add_documents(writer_examples_);
  const ShardHeader h = writer_->finish();
  shards_.push_back(shard_entry_json(writer_->path().filename().string(), h));
  writer_.reset();
}

void SynthSplit::finish() {
  if (writer_) close();
}

std::vector<std::string> SynthSplit::files() const {
  std::vector<std::string> out;
  for (const auto& s : shards_) out.push_back(s.at("file").get<std::string>());
  return out;
}

json SynthSplit::summary_json() const {
  return {{"documents", examples_},           {"tokens", tokens_},
          {"labelled_targets", labelled_},    {"record_tokens", layout_.record_tokens},
          {"label_mask", layout_.label_mask}, {"shards", shards_}};
}

SynthFolder::SynthFolder(const fs::path& out, const std::string& key)
    : out_(out), staging_(out, key) {}

SynthSplit& SynthFolder::split(const std::string& key, std::uint32_t vocab_size, ShardLayout layout,
                               std::uint64_t shard_tokens) {
  std::string prefix;
  for (const SplitName& s : kSplits) {
    if (key == s.key) prefix = s.prefix;
  }
  DIFFTX_CHECK(!prefix.empty(), "unknown split '{}'", key);
  auto& slot = splits_[key];
  if (!slot) slot = std::make_unique<SynthSplit>(dir(), prefix, vocab_size, layout, shard_tokens);
  return *slot;
}

void SynthFolder::add_file(const std::string& name, std::string_view contents) {
  const fs::path path = dir() / name;
  ensure_writable_directory(path.parent_path());
  write_file_atomic(path, contents);
  const std::string top = fs::path(name).begin()->string();
  if (std::find(extra_.begin(), extra_.end(), top) == extra_.end()) extra_.push_back(top);
}

void SynthFolder::commit(const Tokenizer& tokenizer, const std::string& tokenizer_source,
                         const json& task) {
  std::vector<std::string> files;
  json meta = {{"format", kMetaFormat},
               {"version", kMetaVersion},
               {"task", task},
               {"tokenizer",
                {{"file", kTokenizerFile},
                 {"vocab_size", tokenizer.vocab_size()},
                 {"fingerprint", tokenizer.fingerprint()},
                 {"source", tokenizer_source}}},
               {"vocab_size", tokenizer.vocab_size()},
               {"files", extra_}};
  for (auto& [key, split] : splits_) {
    split->finish();
    meta[key] = split->summary_json();
    for (const auto& f : split->files()) files.push_back(f);
  }
  tokenizer.save(dir() / kTokenizerFile);
  files.push_back(kTokenizerFile);
  for (const auto& e : extra_) files.push_back(e);
  write_file_atomic(dir() / kMetaFile, meta.dump(2) + "\n");
  staging_.commit(files);
}

}  // namespace difftx::data
