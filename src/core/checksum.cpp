// XXH3-64 through libxxhash's streaming state (see checksum.h).
#include "difftx/core/checksum.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t by value
#include <fmt/format.h>
#include <xxhash.h>

#include <cctype>
#include <new>

namespace difftx {

struct Checksum64::State {
  XXH3_state_t xxh;
};

Checksum64::Checksum64() : state_(std::make_unique<State>()) {
  if (XXH3_64bits_reset(&state_->xxh) != XXH_OK) throw std::bad_alloc();
}
Checksum64::~Checksum64() = default;
Checksum64::Checksum64(Checksum64&&) noexcept = default;
Checksum64& Checksum64::operator=(Checksum64&&) noexcept = default;

void Checksum64::update(const void* data, std::size_t size) {
  if (size > 0) (void)XXH3_64bits_update(&state_->xxh, data, size);
}

void Checksum64::update_u64(std::uint64_t v) {
  unsigned char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(v >> (8 * i));
  update(bytes, sizeof bytes);
}

std::uint64_t Checksum64::value() const {
  return XXH3_64bits_digest(&state_->xxh);
}

std::uint64_t checksum64(const void* data, std::size_t size) {
  return XXH3_64bits(data, size);
}

std::string hex64(std::uint64_t v) {
  return fmt::format("{:016x}", v);
}

std::string checksum_text(std::uint64_t v) {
  return fmt::format("{}:{:016x}", kChecksumAlgorithm, v);
}

bool is_legacy_checksum_text(std::string_view stored) {
  if (stored.size() != 16) return false;
  for (char c : stored) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace difftx
