// Incremental detokenisation: decode(window) minus decode(emitted part of the window).
#include "difftx/serve/detokenizer.h"

#include <algorithm>

namespace difftx::serve {
namespace {
constexpr std::size_t kContextTokens = 4;  // prompt ids kept as decoding context
}

bool ends_with_partial_character(const std::string& s) {
  const std::size_t n = s.size();
  if (n >= 3 && s.compare(n - 3, 3, "\xEF\xBF\xBD") == 0) return true;
  for (std::size_t back = 1; back <= 4 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    const std::size_t need = (c & 0x80) == 0      ? 1
                             : (c & 0xE0) == 0xC0 ? 2
                             : (c & 0xF0) == 0xE0 ? 3
                                                  : 4;
    return need > back;
  }
  return false;
}

IncrementalDetokenizer::IncrementalDetokenizer(const TextCodec& codec,
                                               std::span<const std::int32_t> prompt)
    : codec_(&codec) {
  const std::size_t keep = std::min(kContextTokens, prompt.size());
  ids_.assign(prompt.end() - static_cast<std::ptrdiff_t>(keep), prompt.end());
  prefix_ = 0;
  read_ = ids_.size();
}

std::string IncrementalDetokenizer::push(std::int32_t token) {
  ids_.push_back(token);
  std::span<const std::int32_t> all(ids_);
  const std::string before = codec_->decode(all.subspan(prefix_, read_ - prefix_));
  const std::string now = codec_->decode(all.subspan(prefix_));
  if (now.size() <= before.size() || ends_with_partial_character(now)) return "";
  std::string piece = now.substr(before.size());
  prefix_ = read_;
  read_ = ids_.size();
  return piece;
}

std::string IncrementalDetokenizer::finish() {
  std::span<const std::int32_t> all(ids_);
  const std::string before = codec_->decode(all.subspan(prefix_, read_ - prefix_));
  const std::string now = codec_->decode(all.subspan(prefix_));
  prefix_ = read_ = ids_.size();
  return now.size() > before.size() ? now.substr(before.size()) : "";
}

}  // namespace difftx::serve
