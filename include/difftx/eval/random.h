// Deterministic randomness for evaluation tasks: a SplitMix64 generator with exact integer and
// unit-interval draws (no std::*_distribution, whose output differs between standard
// libraries), and seed derivation so that each (cell, sample) has its own stream: adding cells
// or samples never changes the others.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

namespace difftx::eval {

inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A seed for one stream, from the run seed and the stream's coordinates.
inline std::uint64_t derive_seed(std::uint64_t seed, std::initializer_list<std::uint64_t> tags) {
  std::uint64_t s = splitmix64(seed);
  for (std::uint64_t t : tags) s = splitmix64(s ^ splitmix64(t + 0x632BE59BD9B4E019ull));
  return s;
}

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}

  std::uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ull;
    std::uint64_t z = state_;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n >= 1, without modulo bias (rejection).
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t limit = ~std::uint64_t(0) - (~std::uint64_t(0) % n);
    std::uint64_t x;
    do {
      x = next();
    } while (x >= limit);
    return x % n;
  }
  // Uniform in [0, 1) from the top 53 bits.
  double uniform01() { return double(next() >> 11) * 0x1.0p-53; }

  // Fisher-Yates.
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }

 private:
  std::uint64_t state_;
};

}  // namespace difftx::eval
