// Fuzz harness: a Hugging Face config.json (DiffLlama / Llama) read for import.
#include "difftx/core/json_input.h"
#include "difftx/hf/hf_config.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  difftx::fuzz::expect_value_or_error([&] {
    const auto imported = difftx::hf::parse_hf_config(
        difftx::parse_json(difftx::fuzz::as_text(data, size), "config.json"), "config.json",
        difftx::RopeStyle::half_split);
    imported.config.validate("round trip");
  });
  return 0;
}
