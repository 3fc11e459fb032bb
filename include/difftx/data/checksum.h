// FNV-1a 64-bit checksums for token shards, split rules and fingerprints. Every step of FNV-1a
// is a bijection of the running state, so any single changed byte always changes the result.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace difftx::data {

class Fnv1a64 {
 public:
  static constexpr std::uint64_t kOffset = 0xcbf29ce484222325ULL;
  static constexpr std::uint64_t kPrime = 0x100000001b3ULL;

  void update(const void* data, std::size_t size) {
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint64_t h = state_;
    for (std::size_t i = 0; i < size; ++i) h = (h ^ p[i]) * kPrime;
    state_ = h;
  }
  void update(std::string_view text) { update(text.data(), text.size()); }
  void update_u64(std::uint64_t v) {
    unsigned char bytes[8];
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(v >> (8 * i));
    update(bytes, 8);
  }
  std::uint64_t value() const { return state_; }

 private:
  std::uint64_t state_ = kOffset;
};

inline std::uint64_t fnv1a64(const void* data, std::size_t size) {
  Fnv1a64 h;
  h.update(data, size);
  return h.value();
}
inline std::uint64_t fnv1a64(std::string_view text) { return fnv1a64(text.data(), text.size()); }

// 16 lowercase hex digits.
std::string hex64(std::uint64_t v);

// SplitMix64 finaliser: a fast, well-mixed 64-bit hash of a 64-bit value.
inline std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace difftx::data
