// Needle samples and prompts (needle_gen.h).
#include "difftx/eval/needle_gen.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "difftx/core/error.h"
#include "difftx/eval/random.h"

namespace difftx::eval {

const std::vector<std::string>& builtin_needle_keys() {
  static const std::vector<std::string> keys = {
      "Chicago",     "Yangon",       "Antananarivo", "Colombo",    "Almaty",    "Sydney",
      "Mexico City", "Seattle",      "Lagos",        "Amsterdam",  "Belgrade",  "Cairo",
      "Baghdad",     "Damascus",     "Kigali",       "Dakar",      "Sofia",     "Victoria",
      "Tashkent",    "Mumbai",       "Barcelona",    "Dhaka",      "Amman",     "Toronto",
      "Bratislava",  "Johannesburg", "Thimphu",      "Bangkok",    "Santiago",  "Cape Town",
      "Havana",      "Riyadh",       "Nairobi",      "Accra",      "Istanbul",  "Jakarta",
      "Karachi",     "Lima",         "Lisbon",       "London",     "Madrid",    "Manila",
      "Melbourne",   "Montreal",     "Moscow",       "Munich",     "Oslo",      "Paris",
      "Prague",      "Quito",        "Rome",         "Seoul",      "Shanghai",  "Singapore",
      "Stockholm",   "Taipei",       "Tehran",       "Tokyo",      "Vienna",    "Warsaw",
      "Zurich",      "Athens",       "Beirut",       "Berlin",     "Bogota",    "Brussels",
      "Budapest",    "Buenos Aires", "Caracas",      "Copenhagen", "Dublin",    "Dubai",
      "Edinburgh",   "Florence",     "Geneva",       "Hanoi",      "Helsinki",  "Hong Kong",
      "Kathmandu",   "Kyiv",         "Lyon",         "Marrakesh",  "Milan",     "Nashville",
      "Osaka",       "Perth",        "Porto",        "Reykjavik",  "Rio",       "San Diego",
      "Seville",     "Tallinn",      "Tbilisi",      "Valencia",   "Vancouver", "Venice",
      "Vilnius",     "Wellington",   "Zagreb",       "Boston"};
  return keys;
}

std::string needle_sentence(const std::string& key, const std::string& number) {
  return "The special magic " + key + " number is: " + number + ".";
}

std::string needle_query(const std::string& key) {
  return "The special magic " + key + " number is:";
}

NeedleSample make_needle_sample(const std::vector<std::string>& keys, NeedleConfig config,
                                int depth_percent, int length, int digits, int index,
                                std::uint64_t seed) {
  DIFFTX_CHECK(config.needles >= 1 && config.queried >= 1 && config.queried <= config.needles,
               "needle config N={} R={}: need 1 <= R <= N", config.needles, config.queried);
  DIFFTX_CHECK(std::size_t(config.needles) <= keys.size(),
               "needle config N={} needs {} distinct keys, only {} are available", config.needles,
               config.needles, keys.size());
  DIFFTX_CHECK(digits >= 1 && digits <= 18, "--digits must be in [1, 18], got {}", digits);
  DIFFTX_CHECK(depth_percent >= 0 && depth_percent <= 100, "needle depth {}% is outside [0, 100]",
               depth_percent);
  NeedleSample s;
  s.config = config;
  s.depth_percent = depth_percent;
  s.length = length;
  s.index = index;
  Rng rng(derive_seed(seed,
                      {0x6e656564ull, std::uint64_t(config.needles), std::uint64_t(config.queried),
                       std::uint64_t(depth_percent), std::uint64_t(length), std::uint64_t(index)}));
  std::vector<std::size_t> order(keys.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  rng.shuffle(order);
  std::set<std::string> used_numbers;
  std::uint64_t lo = 1;
  for (int d = 1; d < digits; ++d) lo *= 10;
  for (int k = 0; k < config.needles; ++k) {
    s.keys.push_back(keys[order[std::size_t(k)]]);
    std::string number;
    do {
      number = std::to_string(lo + rng.below(9 * lo));  // digits digits, first one nonzero
    } while (!used_numbers.insert(number).second);
    s.numbers.push_back(number);
    s.depths.push_back(k == 0 ? depth_percent / 100.0 : rng.uniform01());
  }
  s.haystack_start = rng.next();
  return s;
}

NeedlePrompt build_needle_prompt(const NeedleSample& sample,
                                 const std::vector<std::string>& sentences,
                                 const data::Tokenizer& tokenizer) {
  DIFFTX_CHECK(!sentences.empty(), "needle: the held-out text has no sentences for a haystack");
  auto enc = [&](const std::string& unit) { return tokenizer.encode(" " + unit); };
  const int n = sample.config.needles, r = sample.config.queried;
  NeedlePrompt p;
  std::vector<std::vector<std::int32_t>> needles;
  int needle_tokens = 0, query_tokens = 0;
  for (int k = 0; k < n; ++k) {
    needles.push_back(
        enc(needle_sentence(sample.keys[std::size_t(k)], sample.numbers[std::size_t(k)])));
    needle_tokens += int(needles.back().size());
  }
  for (int k = 0; k < r; ++k) {
    p.queries.push_back(enc(needle_query(sample.keys[std::size_t(k)])));
    p.answers.push_back(enc(sample.numbers[std::size_t(k)]));
    query_tokens = std::max(query_tokens, int(p.queries.back().size()));
  }
  const int haystack = sample.length - 1 - needle_tokens - query_tokens;
  if (haystack < 1) {
    fail(
        "needle: a prompt of {} tokens cannot hold {} needles ({} tokens) and the query ({} "
        "tokens); "
        "use a longer --lengths value or fewer needles",
        sample.length, n, needle_tokens, query_tokens);
  }
  // Haystack: consecutive sentences from the start, the last cut to fill it exactly.
  std::vector<std::int32_t> hay;
  std::vector<int> boundaries = {0};  // token offsets where a sentence starts, and the end
  std::size_t next = std::size_t(sample.haystack_start % sentences.size());
  while (int(hay.size()) < haystack) {
    auto ids = enc(sentences[next]);
    next = (next + 1) % sentences.size();
    const std::size_t room = std::size_t(haystack) - hay.size();
    if (ids.size() > room) ids.resize(room);
    hay.insert(hay.end(), ids.begin(), ids.end());
    boundaries.push_back(int(hay.size()));
  }
  p.haystack_tokens = haystack;
  // Each needle's boundary: the last one at or before its depth fraction of the haystack.
  std::vector<int> at(static_cast<std::size_t>(n));
  for (int k = 0; k < n; ++k) {
    const double target = sample.depths[std::size_t(k)] * haystack;
    auto it =
        std::upper_bound(boundaries.begin(), boundaries.end(), int(std::floor(target + 1e-9)));
    at[std::size_t(k)] = *std::prev(it);
  }
  // Assemble: EOS, then haystack tokens with the needles inserted at their offsets (needles at
  // one offset in order of their index).
  std::vector<int> order(static_cast<std::size_t>(n));
  for (int k = 0; k < n; ++k) order[std::size_t(k)] = k;
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return at[std::size_t(a)] < at[std::size_t(b)]; });
  p.spans.resize(std::size_t(n));
  p.context.push_back(data::kEosId);
  int copied = 0;
  for (int k : order) {
    p.context.insert(p.context.end(), hay.begin() + copied, hay.begin() + at[std::size_t(k)]);
    copied = at[std::size_t(k)];
    const int begin = int(p.context.size());
    p.context.insert(p.context.end(), needles[std::size_t(k)].begin(),
                     needles[std::size_t(k)].end());
    p.spans[std::size_t(k)] = {begin, int(p.context.size())};
  }
  p.context.insert(p.context.end(), hay.begin() + copied, hay.end());
  return p;
}

std::string first_digit_run(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && !(text[i] >= '0' && text[i] <= '9')) ++i;
  std::size_t j = i;
  while (j < text.size() && text[j] >= '0' && text[j] <= '9') ++j;
  return std::string(text.substr(i, j - i));
}

}  // namespace difftx::eval
