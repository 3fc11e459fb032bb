// The one checksum of difftx: XXH3-64 (xxHash, Debian libxxhash-dev) over bytes, used by token
// shards (header and payload), tensor checksums in checkpoints, and tokenizer and data-set
// fingerprints. Streaming (Checksum64) or one-shot (checksum64) give the same value for the
// same bytes, however they are split into update() calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace difftx {

// The algorithm's name, as recorded next to stored checksums ("xxh3-64:<16 hex digits>").
inline constexpr std::string_view kChecksumAlgorithm = "xxh3-64";

class Checksum64 {
 public:
  Checksum64();
  ~Checksum64();
  Checksum64(Checksum64&&) noexcept;
  Checksum64& operator=(Checksum64&&) noexcept;
  Checksum64(const Checksum64&) = delete;
  Checksum64& operator=(const Checksum64&) = delete;

  void update(const void* data, std::size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  // Appends v as 8 little-endian bytes.
  void update_u64(std::uint64_t v);
  // The checksum of everything given so far (the state is unchanged; updates may follow).
  std::uint64_t value() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

std::uint64_t checksum64(const void* data, std::size_t size);
inline std::uint64_t checksum64(std::string_view bytes) {
  return checksum64(bytes.data(), bytes.size());
}

// 16 lowercase hex digits.
std::string hex64(std::uint64_t v);
// "xxh3-64:" followed by hex64(v): how difftx stores a checksum in text (metadata, JSON).
std::string checksum_text(std::uint64_t v);
// Whether `stored` is a checksum text written before difftx used XXH3 (16 bare hex digits,
// FNV-1a-64): such a file is not corrupt, only older; readers say so instead of "mismatch".
bool is_legacy_checksum_text(std::string_view stored);

}  // namespace difftx
