// Prompt checks, the KV-cache token loop, incremental detokenisation with stop strings, and
// several samples (see generator.h). Only token_loop() knows how tokens are produced.
#include "difftx/generate/generator.h"

#include <algorithm>

#include "difftx/core/error.h"

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

// Decodes the growing token list of one sample into text, streams what is final, and finds
// stop strings (which may span tokens).
class TextStream {
 public:
  TextStream(const data::Tokenizer& tokenizer, const std::vector<std::string>& stops,
             std::function<void(const std::string&)> on_text)
      : tokenizer_(tokenizer), stops_(stops), on_text_(std::move(on_text)) {}

  // Adds a token; false once the text contains a stop string (the text is cut before it).
  bool add(const std::vector<std::int32_t>& ids) {
    text_ = tokenizer_.decode(ids);
    std::size_t ready = complete_utf8_prefix(text_);
    for (const auto& stop : stops_) {
      const std::size_t from = searched_ > stop.size() ? searched_ - stop.size() : 0;
      const std::size_t at = text_.find(stop, from);
      if (at != std::string::npos && (!found_ || at < cut_)) {
        found_ = true;
        cut_ = at;
        stop_ = stop;
      }
    }
    searched_ = text_.size();
    if (found_) {
      text_.resize(cut_);
      emit(text_.size());
      return false;
    }
    emit(ready - held_back(ready));
    return true;
  }

  // The end of the sample: everything not yet streamed goes out.
  void finish() { emit(text_.size()); }

  const std::string& text() const { return text_; }
  bool stopped() const { return found_; }
  const std::string& stop_string() const { return stop_; }

 private:
  // Bytes at the end of text_[0, ready) that are a proper prefix of some stop string.
  std::size_t held_back(std::size_t ready) const {
    std::size_t hold = 0;
    for (const auto& stop : stops_) {
      for (std::size_t k = std::min(stop.size() - 1, ready); k > hold; --k) {
        if (text_.compare(ready - k, k, stop, 0, k) == 0) {
          hold = k;
          break;
        }
      }
    }
    return hold;
  }
  void emit(std::size_t upto) {
    if (upto > emitted_ && on_text_) on_text_(text_.substr(emitted_, upto - emitted_));
    emitted_ = std::max(emitted_, upto);
  }

  const data::Tokenizer& tokenizer_;
  const std::vector<std::string>& stops_;
  std::function<void(const std::string&)> on_text_;
  std::string text_;
  std::size_t emitted_ = 0;
  std::size_t searched_ = 0;
  bool found_ = false;
  std::size_t cut_ = 0;
  std::string stop_;
};

// The token loop: prefill with the prompt, then sample one token at a time with the KV
// cache until EOS, the budget, or `on_token` returning false. Returns whether EOS ended it.
bool token_loop(Model& model, const PreparedPrompt& prompt, const SamplingConfig& sampling,
                bool stop_at_eos, std::vector<std::int32_t>& new_ids,
                const std::function<bool(std::int32_t)>& on_token) {
  KvCache cache(model, prompt.context);
  Sampler sampler(sampling);
  Tensor logits = model.decode(cache, prompt.ids);                              // (P, V)
  std::vector<float> row(static_cast<std::size_t>(model.config().vocab_size));  // (V,)
  for (int i = 0; i < prompt.budget; ++i) {
    auto all = logits.to_float_vector();
    std::copy(all.end() - std::ptrdiff_t(row.size()), all.end(), row.begin());
    const std::int32_t next = sampler.sample(row);
    if (stop_at_eos && next == data::kEosId) return true;
    new_ids.push_back(next);
    if (!on_token(next)) return false;
    if (i + 1 < prompt.budget) logits = model.decode(cache, {next});  // (1, V)
  }
  return false;
}

}  // namespace

void validate_generate_options(const GenerateOptions& options) {
  validate_sampling(options.sampling, "generate");
  DIFFTX_CHECK(options.max_new_tokens >= 0, "--max-tokens must be >= 0, got {}",
               options.max_new_tokens);
  for (const auto& s : options.stop)
    DIFFTX_CHECK(!s.empty(), "--stop: a stop string must not be empty");
}

PreparedPrompt prepare_prompt(const Model& model, const data::Tokenizer& tokenizer,
                              const std::string& prompt, const GenerateOptions& options) {
  validate_generate_options(options);
  DIFFTX_CHECK(
      tokenizer.vocab_size() == model.config().vocab_size,
      "the tokenizer has {} ids but the model's vocab_size is {}: checkpoint and tokenizer do "
      "not belong together",
      tokenizer.vocab_size(), model.config().vocab_size);
  PreparedPrompt p;
  p.context = model.config().max_seq_len;
  p.ids.push_back(data::kEosId);
  for (std::int32_t id : tokenizer.encode(prompt)) p.ids.push_back(id);
  if (int(p.ids.size()) >= p.context) {
    fail("the prompt is {} tokens long; the model's context (max_seq_len) is {} tokens: shorten it",
         p.ids.size() - 1, p.context);
  }
  p.budget = std::min(options.max_new_tokens, p.context - int(p.ids.size()));
  return p;
}

std::vector<GenerateResult> generate_samples(Model& model, const data::Tokenizer& tokenizer,
                                             const PreparedPrompt& prompt,
                                             const GenerateOptions& options, int samples,
                                             const SampleCallbacks& callbacks) {
  validate_generate_options(options);
  DIFFTX_CHECK(samples >= 1, "--samples must be at least 1, got {}", samples);
  std::vector<GenerateResult> results;
  for (int i = 0; i < samples; ++i) {
    GenerateResult r;
    r.prompt_ids = prompt.ids;
    SamplingConfig sampling = options.sampling;
    sampling.seed = options.sampling.seed + std::uint64_t(i);
    r.seed = sampling.seed;
    if (callbacks.begin) callbacks.begin(i, r.seed);
    TextStream stream(tokenizer, options.stop, [&](const std::string& piece) {
      if (callbacks.text) callbacks.text(i, piece);
    });
    const bool eos = token_loop(model, prompt, sampling, options.stop_at_eos, r.new_ids,
                                [&](std::int32_t) { return stream.add(r.new_ids); });
    stream.finish();
    r.text = stream.text();
    if (eos) {
      r.stop = GenerateStop::eos;
    } else if (stream.stopped()) {
      r.stop = GenerateStop::stop_string;
      r.stop_string = stream.stop_string();
    } else {
      r.stop = prompt.budget < options.max_new_tokens ? GenerateStop::context_full
                                                      : GenerateStop::max_tokens;
    }
    if (callbacks.end) callbacks.end(i, r);
    results.push_back(std::move(r));
  }
  return results;
}

GenerateResult generate_text(Model& model, const data::Tokenizer& tokenizer,
                             const std::string& prompt, const GenerateOptions& options,
                             const std::function<void(const std::string&)>& on_text) {
  const PreparedPrompt p = prepare_prompt(model, tokenizer, prompt, options);
  SampleCallbacks callbacks;
  if (on_text) callbacks.text = [&](int, const std::string& piece) { on_text(piece); };
  auto results = generate_samples(model, tokenizer, p, options, 1, callbacks);
  return std::move(results.front());
}

std::string describe_stop(const GenerateResult& r, int context) {
  switch (r.stop) {
    case GenerateStop::eos:
      return "end of text (the model produced EOS)";
    case GenerateStop::stop_string: {
      std::string shown;
      for (char c : r.stop_string) {
        if (c == '\n')
          shown += "\\n";
        else if (c == '\t')
          shown += "\\t";
        else if (c == '"' || c == '\\')
          shown += std::string("\\") + c;
        else
          shown += c;
      }
      return fmt::format("stop string \"{}\"", shown);
    }
    case GenerateStop::max_tokens:
      return fmt::format("--max-tokens {} reached", r.new_ids.size());
    case GenerateStop::context_full:
      return fmt::format(
          "the context is full (max_seq_len {} = 1 EOS + {} prompt + {} generated tokens)", context,
          r.prompt_ids.size() - 1, r.new_ids.size());
  }
  return "?";
}

}  // namespace difftx
