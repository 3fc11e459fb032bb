// Fuzz harness: a model config (JSON text -> ModelConfig, validated), its derived sizes and its
// round trip through to_json.
#include "difftx/core/json_input.h"
#include "difftx/model/config.h"
#include "difftx/model/params.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  difftx::fuzz::expect_value_or_error([&] {
    const auto config = difftx::ModelConfig::from_json(
        difftx::parse_json(difftx::fuzz::as_text(data, size), "fuzz.json"), "fuzz.json");
    // A validated config has sizes that fit its types: the closed-form count is positive.
    if (difftx::parameter_count_formula(config) <= 0) std::abort();
    const auto again = difftx::ModelConfig::from_json(config.to_json(), "round trip");
    if (again.to_json() != config.to_json()) std::abort();
    (void)difftx::matched_baseline(config).to_json();
  });
  return 0;
}
