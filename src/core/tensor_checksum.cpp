// Checksums over named tensors (see tensor_checksum.h): XXH3-64 (xxHash, header-only) and the
// legacy FNV-1a-64, fed the same byte stream: name + NUL, 4 bytes of the dtype name, the dims,
// the data.
#include "difftx/core/tensor_checksum.h"

#include <fmt/core.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <memory>

namespace difftx {
namespace {

struct Fnv1a64 {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  void add(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  }
  std::uint64_t value() const { return h; }
};

struct Xxh3 {
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state{XXH3_createState(),
                                                                 &XXH3_freeState};
  Xxh3() {
    if (!state || XXH3_64bits_reset(state.get()) != XXH_OK) fail("cannot start an XXH3 checksum");
  }
  void add(const void* data, std::size_t n) { XXH3_64bits_update(state.get(), data, n); }
  std::uint64_t value() const { return XXH3_64bits_digest(state.get()); }
};

template <typename Hash>
std::uint64_t digest(const std::vector<std::pair<std::string, Tensor>>& tensors) {
  Hash h;
  for (const auto& [name, t] : tensors) {
    const Tensor host = t.device() == Device::cpu ? t : t.to(Device::cpu);
    h.add(name.data(), name.size() + 1);
    const char* dt = dtype_name(host.dtype());  // "f32", "bf16": 4 bytes with the NUL
    h.add(dt, 4);
    for (auto d : host.shape()) h.add(&d, sizeof d);
    h.add(host.raw(), host.nbytes());
  }
  return h.value();
}

}  // namespace

std::string tensors_checksum(const std::vector<std::pair<std::string, Tensor>>& tensors,
                             TensorChecksum algorithm) {
  const std::uint64_t value =
      algorithm == TensorChecksum::fnv1a64 ? digest<Fnv1a64>(tensors) : digest<Xxh3>(tensors);
  return fmt::format("{:016x}", value);
}

}  // namespace difftx
