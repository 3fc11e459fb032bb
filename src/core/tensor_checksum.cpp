// The checksum of named tensors (see tensor_checksum.h), through the one checksum of core.
#include "difftx/core/tensor_checksum.h"

#include <string_view>

#include "difftx/core/checksum.h"

namespace difftx {

std::string tensors_checksum(const std::vector<std::pair<std::string, Tensor>>& tensors) {
  Checksum64 sum;
  for (const auto& [name, t] : tensors) {
    Tensor host = t.device() == Device::cpu ? t : t.to(Device::cpu);
    sum.update(name.data(), name.size() + 1);  // with its terminating NUL: names cannot run on
    const std::string_view dt = dtype_name(host.dtype());
    sum.update(dt.data(), dt.size() + 1);
    for (auto d : host.shape()) sum.update_u64(static_cast<std::uint64_t>(d));
    sum.update(host.raw(), host.nbytes());
  }
  return checksum_text(sum.value());
}

}  // namespace difftx
