// Text generation with a KV cache: prompt -> prefill -> sample one token at a time, streaming
// decoded text through a callback. Above the token loop (which the inference engine will
// take over) sit what users ask of `generate`: checks before any output, stop strings,
// several samples from consecutive seeds, and the reason each sample stopped.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "difftx/data/tokenizer.h"
#include "difftx/engine/sampling.h"
#include "difftx/model/model.h"

namespace difftx {

struct GenerateOptions {
  int max_new_tokens = 200;  // >= 0
  SamplingConfig sampling;   // sample i of several uses seed + i
  bool stop_at_eos = true;
  std::vector<std::string> stop;  // stop strings (non-empty): the text ends before the first one
};

enum class GenerateStop {
  eos,           // the model produced the end-of-document token
  stop_string,   // the text reached one of GenerateOptions::stop
  max_tokens,    // max_new_tokens were generated
  context_full,  // the prompt plus the generated tokens filled max_seq_len first
};

struct GenerateResult {
  std::vector<std::int32_t> prompt_ids;  // as fed (starting with the document separator EOS)
  std::vector<std::int32_t> new_ids;
  std::string text;  // decoded new tokens (cut before a stop string)
  GenerateStop stop = GenerateStop::max_tokens;
  std::string stop_string;  // GenerateStop::stop_string: which one
  std::uint64_t seed = 0;   // the sampling seed of this sample
};

// A prompt checked against the model: ids to feed and how many new tokens fit.
struct PreparedPrompt {
  std::vector<std::int32_t> ids;  // EOS, then the prompt's tokens
  int budget = 0;                 // min(max_new_tokens, max_seq_len - ids.size())
  int context = 0;                // the model's max_seq_len
};

// Throws difftx::Error (naming the option) for bad sampling settings, a negative token limit
// or an empty stop string. Cheap: call it before printing anything.
void validate_generate_options(const GenerateOptions& options);

// validate_generate_options, then the tokenizer against the model and the prompt's length
// against the context. Every error generation can raise on its inputs is raised here.
PreparedPrompt prepare_prompt(const Model& model, const data::Tokenizer& tokenizer,
                              const std::string& prompt, const GenerateOptions& options);

// What generate_samples reports while it runs (each callback optional).
struct SampleCallbacks {
  std::function<void(int sample, std::uint64_t seed)> begin;
  // Each newly decodable piece of text (byte-fallback tokens are held until they form whole
  // characters; text that could be the start of a stop string is held until it is known
  // not to be one).
  std::function<void(int sample, const std::string& piece)> text;
  std::function<void(int sample, const GenerateResult& result)> end;
};

// Generates `samples` (>= 1) continuations of a prepared prompt, one after the other, sample
// i with seed options.sampling.seed + i.
std::vector<GenerateResult> generate_samples(Model& model, const data::Tokenizer& tokenizer,
                                             const PreparedPrompt& prompt,
                                             const GenerateOptions& options, int samples,
                                             const SampleCallbacks& callbacks = {});

// One sample: prepare_prompt, then generate_samples with samples = 1.
GenerateResult generate_text(Model& model, const data::Tokenizer& tokenizer,
                             const std::string& prompt, const GenerateOptions& options,
                             const std::function<void(const std::string&)>& on_text = {});

// Why a sample stopped, in words: "end of text (EOS)", "stop string \"\\n\\n\"",
// "--max-tokens 80 reached", "the context is full (max_seq_len 128 = 1 EOS + 5 prompt + 122
// generated tokens)".
std::string describe_stop(const GenerateResult& result, int context);

}  // namespace difftx
