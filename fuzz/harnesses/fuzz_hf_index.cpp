// Fuzz harness: model.safetensors.index.json of a sharded Hugging Face folder.
#include "difftx/hf/hf_weights.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  difftx::fuzz::expect_value_or_error([&] {
    const auto index = difftx::hf::parse_hf_index(difftx::fuzz::as_text(data, size),
                                                  "model.safetensors.index.json");
    if (index.empty()) std::abort();
  });
  return 0;
}
