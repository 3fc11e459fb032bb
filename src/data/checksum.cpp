// Hex formatting for checksums and fingerprints.
#include "difftx/data/checksum.h"

#include <fmt/format.h>

namespace difftx::data {

std::string hex64(std::uint64_t v) { return fmt::format("{:016x}", v); }

}  // namespace difftx::data
