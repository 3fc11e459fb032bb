// FNV-1a-64 over named tensors (see tensor_checksum.h).
#include "difftx/core/tensor_checksum.h"

#include <fmt/core.h>

namespace difftx {
namespace {

struct Fnv {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  void add(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  }
};

}  // namespace

std::string tensors_checksum(const std::vector<std::pair<std::string, Tensor>>& tensors) {
  Fnv f;
  for (const auto& [name, t] : tensors) {
    Tensor host = t.device() == Device::cpu ? t : t.to(Device::cpu);
    f.add(name.data(), name.size() + 1);
    const char* dt = dtype_name(host.dtype());
    f.add(dt, 4);
    for (auto d : host.shape()) f.add(&d, sizeof d);
    f.add(host.raw(), host.nbytes());
  }
  return fmt::format("{:016x}", f.h);
}

}  // namespace difftx
