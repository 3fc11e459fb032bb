// Fuzz harness: a serialized SentencePiece model loaded as a difftx tokenizer (the checks of
// data::Tokenizer), then used once to encode and decode a short text.
#include <string>

#include "difftx/data/tokenizer.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  difftx::fuzz::expect_value_or_error([&] {
    const auto tokenizer = difftx::data::Tokenizer::from_serialized(
        std::string(difftx::fuzz::as_text(data, size)), "fuzz.model");
    (void)tokenizer.decode(tokenizer.encode("The jury said 42 times.\nA second line."));
  });
  return 0;
}
