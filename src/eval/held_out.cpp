// Loading held-out text (prepared validation shards or text files) and cutting it into token
// streams and sentences.
#include "difftx/eval/held_out.h"

#include <span>

#include "difftx/core/error.h"
#include "difftx/data/corpus.h"
#include "difftx/data/loader.h"
#include "difftx/data/prepare.h"

namespace difftx::eval {
namespace fs = std::filesystem;

HeldOutText HeldOutText::load(const HeldOutSource& source) {
  const bool has_data = !source.data.empty(), has_text = !source.text.empty();
  DIFFTX_CHECK(has_data != has_text,
               "give held-out text with --data DIR (a prepared data folder) or --text FILE..., "
               "exactly one of them");
  HeldOutText h;
  if (has_data) {
    h.kind_ = "data";
    h.paths_ = {source.data.string()};
    std::error_code ec;
    if (!fs::is_directory(source.data, ec)) {
      fail("--data '{}' is not a folder (prepare one with `difftx data prepare --out DIR`)",
           source.data.string());
    }
    const fs::path tok_path = source.data / data::kTokenizerFile;
    if (!fs::exists(tok_path)) {
      fail("--data '{}' has no {} (not a prepared data folder?)", source.data.string(),
           data::kTokenizerFile);
    }
    const data::Tokenizer tokenizer = data::Tokenizer::load(tok_path);
    h.shard_tokenizer_ = tokenizer.fingerprint();
    data::ShardSet shards(data::find_shards(source.data, "val"), true);
    std::vector<std::int32_t> stream;
    for (const auto& s : shards.shards()) {
      const auto t = s.read_all();
      stream.insert(stream.end(), t.begin(), t.end());
    }
    std::size_t begin = 0;
    for (std::size_t i = 0; i <= stream.size(); ++i) {
      if (i == stream.size() || stream[i] == data::kEosId) {
        if (i > begin) {
          std::span<const std::int32_t> doc(stream.data() + begin, i - begin);
          h.documents_.push_back(tokenizer.decode(doc));
        }
        begin = i + 1;
      }
    }
  } else {
    h.kind_ = "text";
    for (const auto& p : source.text) h.paths_.push_back(p.string());
    const data::Corpus corpus = data::Corpus::files(source.text);
    for (std::size_t i = 0; i < corpus.size(); ++i) {
      std::string text = corpus.text(i);
      if (!text.empty()) h.documents_.push_back(std::move(text));
    }
  }
  if (h.documents_.empty()) {
    fail("the held-out text ({}) holds no text", h.paths_.empty() ? "" : h.paths_.front());
  }
  return h;
}

std::uint64_t HeldOutText::bytes() const {
  std::uint64_t n = 0;
  for (const auto& d : documents_) n += d.size();
  return n;
}

nlohmann::json HeldOutText::describe() const {
  nlohmann::json j = {
      {"kind", kind_}, {"paths", paths_}, {"documents", documents_.size()}, {"bytes", bytes()}};
  if (kind_ == "data") j["tokenizer"] = shard_tokenizer_;
  return j;
}

TokenStream HeldOutText::tokens(const data::Tokenizer& tokenizer, std::uint64_t max_tokens) const {
  TokenStream out;
  const std::uint64_t cap = max_tokens == 0 ? ~std::uint64_t(0) : max_tokens;
  // With the data folder's own tokenizer this re-creates its shard stream exactly (documents are
  // decoded from it, and encode(decode(ids)) == ids for the ids encode produced).
  out.from_shards = kind_ == "data" && tokenizer.fingerprint() == shard_tokenizer_;
  for (const auto& doc : documents_) {
    if (out.tokens.size() >= cap) break;
    std::vector<std::int32_t> ids = tokenizer.encode(doc);
    ids.push_back(data::kEosId);
    const std::uint64_t room = cap - out.tokens.size();
    if (ids.size() > room) {
      ids.resize(room);
      out.bytes += tokenizer.decode(ids).size();
    } else {
      out.bytes += doc.size();
    }
    out.tokens.insert(out.tokens.end(), ids.begin(), ids.end());
  }
  return out;
}

std::vector<std::string> HeldOutText::sentences() const {
  std::vector<std::string> out;
  for (const auto& d : documents_) {
    auto s = split_sentences(d);
    out.insert(out.end(), std::make_move_iterator(s.begin()), std::make_move_iterator(s.end()));
  }
  return out;
}

std::vector<std::string> split_sentences(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    while (!cur.empty() && cur.back() == ' ') cur.pop_back();
    if (!cur.empty()) out.push_back(cur);
    cur.clear();
  };
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  const std::size_t n = text.size();
  for (std::size_t i = 0; i < n; ++i) {
    const char c = text[i];
    if (c == '\n') {
      flush();
      continue;
    }
    if (is_space(c)) {
      if (!cur.empty() && cur.back() != ' ') cur += ' ';
      continue;
    }
    cur += c;
    if (c == '.' || c == '?' || c == '!') {
      // closing quotes and brackets stay with the sentence
      while (i + 1 < n && (text[i + 1] == '"' || text[i + 1] == '\'' || text[i + 1] == ')'))
        cur += text[++i];
      if (i + 1 >= n || is_space(text[i + 1])) flush();
    }
  }
  flush();
  return out;
}

}  // namespace difftx::eval
