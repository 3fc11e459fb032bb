// Prompt encoding, the token loop on the inference engine (one sequence) and incremental
// detokenisation.
#include "difftx/generate/generator.h"

#include "difftx/core/error.h"
#include "difftx/engine/engine.h"

namespace difftx {
namespace {

// Length of the longest prefix of `s` that is complete UTF-8 (a trailing partial character,
// e.g. from byte-fallback tokens still to come, is held back).
std::size_t complete_utf8_prefix(const std::string& s) {
  std::size_t n = s.size();
  for (std::size_t back = 1; back <= 3 && back <= n; ++back) {
    unsigned char c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    std::size_t need = (c & 0x80) == 0 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
    return need > back ? n - back : n;
  }
  return n;
}

}  // namespace

GenerateResult generate_text(Model& model, const data::Tokenizer& tokenizer, const std::string& prompt,
                             const GenerateOptions& options,
                             const std::function<void(const std::string&)>& on_text) {
  validate_sampling(options.sampling, "generate");
  DIFFTX_CHECK(options.max_new_tokens >= 0, "--max-tokens must be >= 0, got {}", options.max_new_tokens);
  DIFFTX_CHECK(tokenizer.vocab_size() == model.config().vocab_size,
               "the tokenizer has {} ids but the model's vocab_size is {}: checkpoint and tokenizer do not belong together",
               tokenizer.vocab_size(), model.config().vocab_size);
  GenerateResult result;
  result.prompt_ids.push_back(data::kEosId);
  for (std::int32_t id : tokenizer.encode(prompt)) result.prompt_ids.push_back(id);
  const int capacity = model.config().max_seq_len;
  if (int(result.prompt_ids.size()) >= capacity) {
    fail("the prompt is {} tokens long; the model's context (max_seq_len) is {} tokens: shorten it",
         result.prompt_ids.size() - 1, capacity);
  }
  const int budget = std::min(options.max_new_tokens, capacity - int(result.prompt_ids.size()));
  std::string emitted;
  if (budget > 0) {
    // One sequence through the engine: paged KV cache, device sampling, CUDA graphs on CUDA.
    engine::EngineOptions eo;
    eo.max_batch = 1;
    eo.eos_id = data::kEosId;
    engine::Engine engine(model, eo);
    engine::Request request;
    request.prompt = result.prompt_ids;
    request.max_new_tokens = budget;
    request.sampling = options.sampling;
    request.stop_at_eos = options.stop_at_eos;
    engine.add(std::move(request));
    while (engine.has_work()) {
      for (const engine::TokenEvent& e : engine.step()) {
        if (e.finish == engine::FinishReason::eos) {
          result.stopped_at_eos = true;
          continue;
        }
        if (e.token < 0) continue;
        result.new_ids.push_back(e.token);
        std::string text = tokenizer.decode(result.new_ids);
        std::size_t ready = complete_utf8_prefix(text);
        if (ready > emitted.size() && on_text) on_text(text.substr(emitted.size(), ready - emitted.size()));
        if (ready > emitted.size()) emitted = text.substr(0, ready);
      }
    }
  }
  result.text = tokenizer.decode(result.new_ids);
  if (on_text && result.text.size() > emitted.size()) on_text(result.text.substr(emitted.size()));
  return result;
}

}  // namespace difftx
