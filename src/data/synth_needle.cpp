// needle-mix task data (see synth_needle.h).
#include "difftx/data/synth_needle.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <set>

#include "difftx/core/checksum.h"
#include "difftx/core/error.h"
#include "difftx/data/random.h"
#include "difftx/data/synth_source.h"
#include "difftx/data/synth_writer.h"

namespace difftx::data {
using nlohmann::json;

const std::vector<std::string>& needle_cities() {
  static const std::vector<std::string> cities = {
      "Amsterdam", "Athens",    "Auckland", "Baghdad",   "Bangkok",      "Barcelona",  "Beijing",
      "Belgrade",  "Berlin",    "Bogota",   "Boston",    "Brisbane",     "Brussels",   "Bucharest",
      "Budapest",  "Cairo",     "Calgary",  "Caracas",   "Chicago",      "Copenhagen", "Dakar",
      "Dallas",    "Delhi",     "Denver",   "Detroit",   "Dhaka",        "Dublin",     "Edinburgh",
      "Florence",  "Geneva",    "Glasgow",  "Hamburg",   "Hanoi",        "Havana",     "Helsinki",
      "Houston",   "Istanbul",  "Jakarta",  "Jerusalem", "Johannesburg", "Kabul",      "Karachi",
      "Kathmandu", "Kiev",      "Kyoto",    "Lagos",     "Lima",         "Lisbon",     "Liverpool",
      "London",    "Madrid",    "Manila",   "Marseille", "Melbourne",    "Miami",      "Milan",
      "Montreal",  "Moscow",    "Mumbai",   "Munich",    "Nairobi",      "Naples",     "Nashville",
      "Oslo",      "Ottawa",    "Paris",    "Perth",     "Philadelphia", "Phoenix",    "Prague",
      "Quito",     "Riga",      "Rome",     "Rotterdam", "Santiago",     "Seattle",    "Seoul",
      "Shanghai",  "Singapore", "Sofia",    "Stockholm", "Sydney",       "Taipei",     "Tallinn",
      "Tehran",    "Tokyo",     "Toronto",  "Tunis",     "Turin",        "Valencia",   "Vancouver",
      "Venice",    "Vienna",    "Vilnius",  "Warsaw",    "Winnipeg",     "Zagreb",     "Zurich",
      "Osaka",     "Lyon"};
  return cities;
}

namespace {

std::string fill(const char* pattern, const std::string& city, const std::string& number) {
  std::string s = pattern;
  s.replace(s.find("{city}"), 6, city);
  const std::size_t n = s.find("{number}");
  if (n != std::string::npos) s.replace(n, 8, number);
  return s;
}

// Whether the period at text[i] ends an abbreviation ("Mr.", "Dr.", "H.") rather than a
// sentence: the word before it is a single letter or a short capitalised title.
bool abbreviation_before(const std::string& text, std::size_t i) {
  std::size_t w = i;
  while (w > 0 && std::isalpha(static_cast<unsigned char>(text[w - 1]))) --w;
  const std::string word = text.substr(w, i - w);
  static const char* titles[] = {"Mr",  "Mrs", "Ms",   "Dr",  "St",  "Jr",  "Sr",
                                 "Mt",  "Gen", "Gov",  "Rep", "Sen", "Rev", "Prof",
                                 "Col", "Lt",  "Capt", "Inc", "Co"};
  if (word.size() == 1 && std::isupper(static_cast<unsigned char>(word[0]))) return true;
  for (const char* t : titles) {
    if (word == t) return true;
  }
  return false;
}

// Sentences of a document's text: cut after ". ", "? ", "! " (not after an abbreviation) and
// at paragraph breaks; each keeps its trailing separator, so joining them gives the text back.
std::vector<std::string> sentences_of(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t i = 0; i + 1 < text.size(); ++i) {
    const bool end_mark = (text[i] == '.' || text[i] == '?' || text[i] == '!') &&
                          (text[i + 1] == ' ' || text[i + 1] == '\n');
    if (!end_mark || (text[i] == '.' && text[i + 1] == ' ' && abbreviation_before(text, i))) {
      continue;
    }
    std::size_t cut = i + 1;
    while (cut < text.size() && (text[cut] == ' ' || text[cut] == '\n')) ++cut;
    out.push_back(text.substr(start, cut - start));
    start = cut;
  }
  if (start < text.size()) out.push_back(text.substr(start));
  return out;
}

struct Needle {
  std::string city, number;
  double depth = 0;  // characters before the needle / characters of the context
};

struct Pools {
  std::vector<std::string> train_cities, test_cities;
  std::set<std::uint64_t> test_numbers;
  std::uint64_t low = 0, high = 0;  // numbers have `digits` digits: [low, high)
};

std::string draw_number(Rng& rng, const Pools& pools, bool test) {
  if (test) {
    auto it = pools.test_numbers.begin();
    std::advance(it, static_cast<long>(rng.below(pools.test_numbers.size())));
    return std::to_string(*it);
  }
  for (;;) {
    const std::uint64_t n = pools.low + rng.below(pools.high - pools.low);
    if (!pools.test_numbers.count(n)) return std::to_string(n);
  }
}

// A document: `sentences` (at most `budget` tokens of them, from `first`), with `needles`
// inserted between sentences at random depths and the questions with answers at the end.
struct BuiltDocument {
  std::string text;             // the whole document (answers included)
  std::string context;          // test: the text up to the last question's "is:" (no answer)
  std::vector<Needle> needles;  // as inserted
  Needle asked;                 // the last question's needle
  bool has_question = false;
  std::size_t next = 0;  // the first sentence not used
};

BuiltDocument build_document(Rng& rng, const Tokenizer& tok, const std::vector<std::string>& sents,
                             std::size_t first, int budget, std::vector<Needle> needles,
                             bool ask_one) {
  BuiltDocument doc;
  std::vector<std::string> chosen;
  int used = 0;
  std::size_t i = first;
  for (; i < sents.size(); ++i) {
    const int n = static_cast<int>(tok.encode(sents[i]).size());
    if (used + n > budget && !chosen.empty()) break;
    if (used + n > budget) {  // a single sentence longer than the budget is skipped
      continue;
    }
    chosen.push_back(sents[i]);
    used += n;
  }
  doc.next = i;
  // Needles between sentences: slot k means "before chosen[k]" (k = chosen.size(): at the end).
  std::vector<std::pair<std::size_t, std::size_t>> slots;  // (slot, needle)
  for (std::size_t k = 0; k < needles.size(); ++k) {
    slots.emplace_back(static_cast<std::size_t>(rng.below(chosen.size() + 1)), k);
  }
  std::sort(slots.begin(), slots.end());
  std::string body;
  std::size_t s = 0;
  std::vector<std::size_t> offset(needles.size());
  for (std::size_t k = 0; k <= chosen.size(); ++k) {
    while (s < slots.size() && slots[s].first == k) {
      if (!body.empty() && body.back() != ' ' && body.back() != '\n') body += ' ';
      offset[slots[s].second] = body.size();
      const Needle& nd = needles[slots[s].second];
      body += fill(kNeedleTemplate, nd.city, nd.number) + " ";
      ++s;
    }
    if (k < chosen.size()) body += chosen[k];
  }
  while (!body.empty() && (body.back() == ' ' || body.back() == '\n')) body.pop_back();
  for (std::size_t k = 0; k < needles.size(); ++k) {
    needles[k].depth =
        body.empty() ? 0.0 : static_cast<double>(offset[k]) / static_cast<double>(body.size());
  }
  doc.text = body;
  if (!needles.empty()) {
    std::vector<std::size_t> order(needles.size());
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
    rng.shuffle(order);
    if (ask_one) order.resize(1);
    doc.text += "\n\n";
    for (std::size_t q = 0; q < order.size(); ++q) {
      const Needle& nd = needles[order[q]];
      if (q + 1 == order.size()) {
        doc.context = doc.text + fill(kNeedleQuestion, nd.city, "");
        doc.asked = nd;
        doc.has_question = true;
      }
      doc.text += fill(kNeedleTemplate, nd.city, nd.number) + (q + 1 == order.size() ? "" : "\n");
    }
  }
  doc.text += "\n";
  doc.needles = std::move(needles);
  return doc;
}

void check_options(const NeedleMixOptions& o) {
  if (!(o.needle_fraction >= 0 && o.needle_fraction <= 1)) {
    fail("needle-mix: --needle-fraction {} must be in [0, 1]", o.needle_fraction);
  }
  if (o.context < 64) fail("needle-mix: --context {} is too short: use at least 64", o.context);
  if (o.max_needles < 1 || o.max_needles > 16) {
    fail("needle-mix: --max-needles {} must be from 1 to 16", o.max_needles);
  }
  if (o.digits < 2 || o.digits > 9) fail("needle-mix: --digits {} must be from 2 to 9", o.digits);
  const int cities = static_cast<int>(needle_cities().size());
  const int test_needles = o.test_needles > 0 ? o.test_needles : o.max_needles;
  if (o.test_cities < test_needles || o.test_cities > cities - o.max_needles) {
    fail("needle-mix: --test-cities {} must leave room for the needles: from {} to {}",
         o.test_cities, test_needles, cities - o.max_needles);
  }
  std::uint64_t span = 9;
  for (int i = 1; i < o.digits; ++i) span *= 10;
  if (o.test_numbers < 1 || static_cast<std::uint64_t>(o.test_numbers) * 2 > span) {
    fail("needle-mix: --test-numbers {} must be from 1 to half of the {}-digit numbers ({})",
         o.test_numbers, o.digits, span / 2);
  }
  if (o.test_documents < 1) fail("needle-mix: --test-documents must be at least 1");
  if (o.out_dir.empty()) fail("needle-mix: pass the output folder with --out");
}

}  // namespace

NeedleMixSummary write_needle_mix(const NeedleMixOptions& o) {
  check_options(o);
  const int test_needles = o.test_needles > 0 ? o.test_needles : o.max_needles;
  const std::vector<SourceDocument> docs = load_source_documents(o.inputs, o.brown_dir);
  const SourceSplit split = split_source_documents(docs, o.val_fraction, o.seed);
  Rng rng(mix64(o.seed ^ 0x6e65656c65ULL));

  // Held-out cities and numbers.
  Pools pools;
  std::vector<std::string> cities = needle_cities();
  rng.shuffle(cities);
  pools.test_cities.assign(cities.end() - o.test_cities, cities.end());
  pools.train_cities.assign(cities.begin(), cities.end() - o.test_cities);
  pools.low = 1;
  for (int i = 1; i < o.digits; ++i) pools.low *= 10;
  pools.high = pools.low * 10;
  while (pools.test_numbers.size() < static_cast<std::size_t>(o.test_numbers)) {
    pools.test_numbers.insert(pools.low + rng.below(pools.high - pools.low));
  }

  // The tokenizer learns the training text and needles with training cities and numbers only.
  std::vector<std::string> lines;
  for (std::size_t i : split.train) append_training_lines(docs[i].text, lines);
  for (int k = 0; k < 20 * static_cast<int>(pools.train_cities.size()); ++k) {
    const std::string& city =
        pools.train_cities[static_cast<std::size_t>(k) % pools.train_cities.size()];
    lines.push_back(fill(kNeedleTemplate, city, draw_number(rng, pools, false)));
  }
  std::string tokenizer_source;
  const Tokenizer tok = task_tokenizer(o.tokenizer, o.vocab_size, lines, &tokenizer_source);
  lines.clear();

  const json task = {{"kind", "needle-mix"},
                     {"source", o.inputs.empty() ? "Brown corpus" : "text files"},
                     {"needle_fraction", o.needle_fraction},
                     {"context", o.context},
                     {"max_needles", o.max_needles},
                     {"test_needles", test_needles},
                     {"digits", o.digits},
                     {"seed", o.seed},
                     {"template", kNeedleTemplate},
                     {"question", kNeedleQuestion},
                     {"files", {"needles.json", "needle-test.jsonl"}}};
  json key = task;
  key["tokenizer"] = tok.fingerprint();
  key["val_fraction"] = o.val_fraction;
  key["test_documents"] = o.test_documents;
  SynthFolder folder(o.out_dir, hex64(checksum64(key.dump())));
  const auto vocab = static_cast<std::uint32_t>(tok.vocab_size());
  NeedleMixSummary summary;
  ProgressOptions popts;
  popts.mode = o.progress;
  popts.unit = "doc";
  Progress progress("needle-mix", 0, popts);
  // Room for the needles and questions in a document (about 16 tokens each, plus slack).
  const int reserve = 40 * o.max_needles + 8;
  const int budget_max = std::max(16, static_cast<int>(0.9 * o.context) - reserve);
  const int budget_min = std::max(8, static_cast<int>(0.25 * o.context));

  auto write_documents = [&](const char* key_name, const std::vector<std::size_t>& sources,
                             std::uint64_t* count, std::uint64_t* with_needles) {
    SynthSplit& out = folder.split(key_name, vocab, {});
    for (std::size_t d : sources) {
      const std::vector<std::string> sents = sentences_of(docs[d].text);
      std::size_t next = 0;
      while (next < sents.size()) {
        const int budget =
            budget_min +
            static_cast<int>(rng.below(static_cast<std::uint64_t>(budget_max - budget_min + 1)));
        std::vector<Needle> needles;
        if (rng.uniform() < o.needle_fraction) {
          const int n = 1 + static_cast<int>(rng.below(static_cast<std::uint64_t>(o.max_needles)));
          std::vector<std::string> pick = pools.train_cities;
          rng.shuffle(pick);
          for (int k = 0; k < n; ++k)
            needles.push_back(
                {pick[static_cast<std::size_t>(k)], draw_number(rng, pools, false), 0});
        }
        BuiltDocument doc = build_document(rng, tok, sents, next, budget, needles, false);
        if (doc.next == next) break;  // nothing fits (only over-long sentences remain)
        next = doc.next;
        std::vector<std::int32_t> ids = tok.encode(doc.text);
        ids.push_back(kEosId);
        out.add(ids);
        summary.tokens += ids.size();
        ++*count;
        if (!needles.empty() && with_needles != nullptr) ++*with_needles;
        progress.update(static_cast<double>(summary.train_documents + summary.val_documents));
      }
    }
  };
  write_documents("train", split.train, &summary.train_documents, &summary.train_needle_documents);
  write_documents("validation", split.validation, &summary.val_documents, nullptr);

  // Test documents: held-out text, held-out cities and numbers, one question each.
  SynthSplit& test = folder.split("test", vocab, {});
  std::string test_jsonl;
  std::vector<std::vector<std::string>> test_sents;
  for (std::size_t d : split.test) test_sents.push_back(sentences_of(docs[d].text));
  std::size_t src = 0, next = 0;
  std::uint64_t stalled = 0;
  while (summary.test_documents < static_cast<std::uint64_t>(o.test_documents)) {
    if (next >= test_sents[src].size()) {
      next = 0;
      src = (src + 1) % test_sents.size();
      if (++stalled > 2 * test_sents.size()) {
        fail("needle-mix: the test text is too short for {} test documents of context {}",
             o.test_documents, o.context);
      }
      continue;
    }
    const int budget =
        budget_min +
        static_cast<int>(rng.below(static_cast<std::uint64_t>(budget_max - budget_min + 1)));
    std::vector<std::string> pick = pools.test_cities;
    rng.shuffle(pick);
    std::vector<Needle> needles;
    for (int k = 0; k < test_needles; ++k)
      needles.push_back({pick[static_cast<std::size_t>(k)], draw_number(rng, pools, true), 0});
    BuiltDocument doc = build_document(rng, tok, test_sents[src], next, budget, needles, true);
    if (doc.next == next) {
      next = test_sents[src].size();
      continue;
    }
    stalled = 0;
    // Documents reuse held-out text when there is less of it than test documents need.
    next = doc.next >= test_sents[src].size() ? test_sents[src].size() : doc.next;
    std::vector<std::int32_t> ids = tok.encode(doc.text);
    ids.push_back(kEosId);
    test.add(ids);
    summary.tokens += ids.size();
    json needle_list = json::array();
    for (std::size_t k = 0; k < doc.needles.size(); ++k) {
      needle_list.push_back({{"city", doc.needles[k].city},
                             {"number", doc.needles[k].number},
                             {"depth", doc.needles[k].depth}});
    }
    test_jsonl += json{{"context", doc.context}, {"answer", doc.asked.number},
                       {"city", doc.asked.city}, {"depth", doc.asked.depth},
                       {"needles", needle_list}, {"context_tokens", tok.encode(doc.context).size()}}
                      .dump() +
                  "\n";
    ++summary.test_documents;
  }
  progress.finish(static_cast<double>(summary.train_documents + summary.val_documents +
                                      summary.test_documents));
  std::vector<std::uint64_t> numbers(pools.test_numbers.begin(), pools.test_numbers.end());
  const json needles_json = {
      {"template", kNeedleTemplate},
      {"question", kNeedleQuestion},
      {"digits", o.digits},
      {"train_cities", pools.train_cities},
      {"test_cities", pools.test_cities},
      {"test_numbers", numbers},
      {"train_numbers", fmt::format("every {}-digit number not in test_numbers", o.digits)},
      {"scoring",
       "a test answer counts as found when its number appears in the greedy "
       "completion of the context (LWM's substring match)"}};
  folder.add_file("needles.json", needles_json.dump(2) + "\n");
  folder.add_file("needle-test.jsonl", test_jsonl);
  json full_task = task;
  full_task["documents"] = {{"train", summary.train_documents},
                            {"train_with_needles", summary.train_needle_documents},
                            {"validation", summary.val_documents},
                            {"test", summary.test_documents}};
  folder.commit(tok, tokenizer_source, full_task);
  return summary;
}

}  // namespace difftx::data
