// Multi-threaded encoding of text pieces (see parallel_encoder.h).
#include "difftx/data/parallel_encoder.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

namespace difftx::data {

ParallelEncoder::ParallelEncoder(const Tokenizer& tokenizer, int threads) {
  for (int i = 0; i < std::max(1, threads); ++i) encoders_.emplace_back(tokenizer);
}

void ParallelEncoder::run(const std::vector<std::string_view>& texts,
                          std::vector<std::vector<std::int32_t>>& out) {
  out.resize(texts.size());
  std::atomic<std::size_t> next{0};
  auto work = [&](CachedEncoder& enc) {
    for (std::size_t i = next++; i < texts.size(); i = next++) {
      out[i].clear();
      out[i].reserve(texts[i].size() / 3 + 8);
      enc.encode(texts[i], out[i]);
    }
  };
  const std::size_t n = std::min(encoders_.size(), texts.size());
  std::vector<std::thread> pool;
  std::exception_ptr error;
  std::mutex error_mutex;
  auto guarded = [&](CachedEncoder& enc) {
    try {
      work(enc);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      next = texts.size();  // the others stop too
    }
  };
  for (std::size_t t = 1; t < n; ++t) pool.emplace_back([&, t] { guarded(encoders_[t]); });
  if (n > 0) guarded(encoders_[0]);
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

std::vector<std::size_t> cut_at_unit_boundaries(std::string_view text, std::size_t piece_bytes) {
  std::vector<std::size_t> lengths;
  while (!text.empty()) {
    std::size_t cut = text.size();
    if (text.size() > piece_bytes) {
      const std::size_t at = text.find_first_of(" \n", piece_bytes);
      if (at != std::string_view::npos) cut = at;
    }
    lengths.push_back(cut);
    text.remove_prefix(cut);
  }
  return lengths;
}

}  // namespace difftx::data
