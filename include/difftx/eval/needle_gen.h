// Multi-needle retrieval samples (the LWM / Gemini 1.5 protocol of the paper's Table 2, in the
// completion form small base models can follow): a haystack of held-out sentences with N needles
// "The special magic {key} number is: {digits}." at sentence boundaries, R of them queried by
// ending the prompt with "The special magic {key} number is:". Generation is split in two: a
// tokenizer-independent sample (keys, numbers, depths, haystack start) from the seed, then the
// prompt for one model's tokenizer at an exact token length.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "difftx/data/tokenizer.h"

namespace difftx::eval {

struct NeedleConfig {
  int needles = 1;  // N
  int queried = 1;  // R <= N
};

// The 100 city names of LWM's needle keys (US and world cities), in a fixed order.
const std::vector<std::string>& builtin_needle_keys();

std::string needle_sentence(const std::string& key, const std::string& number);
std::string needle_query(const std::string& key);

// One sample, independent of any tokenizer. Needle 0 is the answer needle, at depth_percent;
// needles 0 .. R-1 are queried (0 first); the others sit at uniformly drawn depths.
struct NeedleSample {
  NeedleConfig config;
  int depth_percent = 0;
  int length = 0;                 // prompt tokens: EOS + haystack with needles + the longest query
  int index = 0;                  // sample number within its cell
  std::vector<std::string> keys;  // N distinct keys
  std::vector<std::string> numbers;  // N distinct numbers of `digits` digits, no leading 0
  std::vector<double> depths;        // depth fraction in [0, 1] of each needle
  std::uint64_t haystack_start = 0;  // first sentence of the haystack (modulo the pool size)
};

// Sample `index` of cell (config, depth, length), a function of (seed, cell, index) only.
// Throws for R > N, N > keys, digits outside [1, 18], a depth outside [0, 100].
NeedleSample make_needle_sample(const std::vector<std::string>& keys, NeedleConfig config,
                                int depth_percent, int length, int digits, int index,
                                std::uint64_t seed);

// The sample's prompt for one tokenizer. Units (sentences, needles, queries) are joined with
// single spaces and encoded separately (" " + unit: the tokenizer is word-separable, so this is
// the encoding of the joined text). Layout:
//   context = EOS, haystack sentences (the last one cut to fill the length exactly) with the
//             needles inserted at sentence boundaries, each at the boundary at or before its
//             depth fraction of the haystack's tokens (LWM: "moved back to the previous sentence
//             end"; depth 100% is the end of the haystack, right before the query)
//   prompt for queried needle r = context + queries[r]; the expected continuation answers[r]
// |context| + max_r |queries[r]| == sample.length.
struct NeedlePrompt {
  std::vector<std::int32_t> context;
  std::vector<std::pair<int, int>> spans;          // [begin, end) of needle k's tokens in context
  std::vector<std::vector<std::int32_t>> queries;  // R
  std::vector<std::vector<std::int32_t>> answers;  // R: " {number}"
  int haystack_tokens = 0;
};

// Throws if the length cannot hold EOS, the needles, the query and one haystack token, or the
// sentence pool is empty.
NeedlePrompt build_needle_prompt(const NeedleSample& sample,
                                 const std::vector<std::string>& sentences,
                                 const data::Tokenizer& tokenizer);

// The first run of ASCII digits in text ("" if none): the model's answer.
std::string first_digit_run(std::string_view text);

}  // namespace difftx::eval
