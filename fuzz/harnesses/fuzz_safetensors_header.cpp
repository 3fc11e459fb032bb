// Fuzz harness: the input is a whole safetensors file; its header is parsed and validated
// (length, JSON, entries, dtypes, offsets tiling the data section).
#include <span>

#include "difftx/core/safetensors.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  difftx::fuzz::expect_value_or_error([&] {
    const auto header = difftx::parse_safetensors_header(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size), size,
        "fuzz.safetensors");
    // Accepted entries lie inside the file.
    for (const auto& e : header.entries) {
      if (e.end < e.begin || header.data_start + e.end > size) std::abort();
    }
  });
  return 0;
}
