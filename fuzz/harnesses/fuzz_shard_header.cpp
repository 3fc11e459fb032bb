// Fuzz harness: the 64-byte header of a token shard (magic, version, width, counts, checksums).
#include <span>

#include "difftx/data/shard.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  difftx::fuzz::expect_value_or_error([&] {
    const auto header = difftx::data::parse_shard_header(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size), "fuzz.tok");
    if (header.token_width != 2 && header.token_width != 4) std::abort();
  });
  return 0;
}
