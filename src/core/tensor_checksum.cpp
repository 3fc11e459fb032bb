// Checksums over named tensors (see tensor_checksum.h): XXH3-64 through core's Checksum64, and
// the legacy FNV-1a-64 of files written before format versions, which fed name + NUL, 4 bytes
// of the dtype name, the dims and the data.
#include "difftx/core/tensor_checksum.h"

#include <fmt/core.h>

#include <string_view>

#include "difftx/core/checksum.h"

namespace difftx {
namespace {

std::string legacy_fnv1a64(const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  const auto add = [&h](const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  };
  for (const auto& [name, t] : tensors) {
    const Tensor host = t.device() == Device::cpu ? t : t.to(Device::cpu);
    add(name.data(), name.size() + 1);
    const char* dt = dtype_name(host.dtype());  // "f32", "bf16": 4 bytes (with the NUL for f32)
    add(dt, 4);
    for (auto d : host.shape()) add(&d, sizeof d);
    add(host.raw(), host.nbytes());
  }
  return fmt::format("{:016x}", h);
}

}  // namespace

std::string tensors_checksum(const std::vector<std::pair<std::string, Tensor>>& tensors,
                             TensorChecksum algorithm) {
  if (algorithm == TensorChecksum::fnv1a64) return legacy_fnv1a64(tensors);
  Checksum64 sum;
  for (const auto& [name, t] : tensors) {
    const Tensor host = t.device() == Device::cpu ? t : t.to(Device::cpu);
    sum.update(name.data(), name.size() + 1);  // with its terminating NUL: names cannot run on
    const std::string_view dt = dtype_name(host.dtype());
    sum.update(dt.data(), dt.size() + 1);
    for (auto d : host.shape()) sum.update_u64(static_cast<std::uint64_t>(d));
    sum.update(host.raw(), host.nbytes());
  }
  return checksum_text(sum.value());
}

}  // namespace difftx
