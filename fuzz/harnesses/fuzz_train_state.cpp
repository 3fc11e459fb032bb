// Fuzz harness: the "state" metadata of train_state.safetensors (step, loader position, seeds,
// optimizer steps), including the data loader's part.
#include "difftx/data/loader.h"
#include "difftx/train/train_state.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  difftx::fuzz::expect_value_or_error([&] {
    const auto record =
        difftx::parse_train_state_meta(difftx::fuzz::as_text(data, size), "fuzz (state)");
    if (record.adam_steps < 0 || record.adam_steps > record.meta.step) std::abort();
    (void)difftx::data::LoaderState::from_json(record.meta.loader);
  });
  return 0;
}
