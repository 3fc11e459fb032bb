// Text generation on the inference engine (one sequence: paged KV cache, chunked prefill,
// sampling on the device, CUDA graphs on CUDA): prompt -> tokens, streaming decoded text through
// a callback; stops at EOS or a token limit. Sampling follows Backend::sample_tokens (the
// Sampler's kept set, a Gumbel-max draw seeded by the seed and the token's index).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "difftx/data/tokenizer.h"
#include "difftx/engine/sampling.h"
#include "difftx/model/model.h"

namespace difftx {

struct GenerateOptions {
  int max_new_tokens = 200;
  SamplingConfig sampling;
  bool stop_at_eos = true;
};

struct GenerateResult {
  std::vector<std::int32_t> prompt_ids;  // as fed (starting with the document separator EOS)
  std::vector<std::int32_t> new_ids;
  std::string text;                      // decoded new tokens
  bool stopped_at_eos = false;
};

// Generates a continuation of `prompt`. The prompt is fed after an EOS id, the separator that
// precedes every document in the training shards. `on_text` receives each newly decodable
// piece of text (byte-fallback tokens are held until they form whole characters).
GenerateResult generate_text(Model& model, const data::Tokenizer& tokenizer, const std::string& prompt,
                             const GenerateOptions& options,
                             const std::function<void(const std::string&)>& on_text = {});

}  // namespace difftx
