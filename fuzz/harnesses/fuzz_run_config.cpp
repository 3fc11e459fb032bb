// Fuzz harness: a run config (JSON text -> RunConfig), then its round trip through to_json.
#include "difftx/core/json_input.h"
#include "difftx/train/run_config.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  difftx::fuzz::expect_value_or_error([&] {
    const auto config = difftx::RunConfig::from_json(
        difftx::parse_json(difftx::fuzz::as_text(data, size), "fuzz.json"), "fuzz.json");
    // What difftx writes into checkpoints must read back to the same config.
    const auto again = difftx::RunConfig::from_json(config.source, "round trip");
    if (again.to_json() != config.to_json()) std::abort();
  });
  return 0;
}
