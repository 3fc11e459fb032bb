// MQAR example generation and its task folder (see synth_mqar.h).
#include "difftx/data/synth_mqar.h"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "difftx/core/checksum.h"
#include "difftx/core/error.h"
#include "difftx/data/symbol_tokenizer.h"
#include "difftx/data/synth_writer.h"

namespace difftx::data {
using nlohmann::json;

namespace {

// `count` distinct values from [first, first + range), in random order.
std::vector<std::int32_t> distinct(Rng& rng, std::int32_t first, std::int32_t range, int count) {
  std::vector<std::int32_t> out;
  std::unordered_set<std::int32_t> seen;
  out.reserve(static_cast<std::size_t>(count));
  while (static_cast<int>(out.size()) < count) {
    const auto v = first + static_cast<std::int32_t>(rng.below(static_cast<std::uint64_t>(range)));
    if (seen.insert(v).second) out.push_back(v);
  }
  return out;
}

json shape_json(const MqarShape& s) {
  return {{"seq_len", s.seq_len}, {"record_tokens", s.seq_len + 1}, {"pairs", s.pairs}};
}

}  // namespace

std::int32_t mqar_first_key() {
  return kFirstSymbolId;
}
std::int32_t mqar_first_value(int vocab_size) {
  return vocab_size / 2;
}

void check_mqar_shape(const MqarShape& s, const std::string& what) {
  if (s.vocab_size < 2 * kFirstSymbolId + 2 || s.vocab_size > 65536) {
    fail(
        "{}: --vocab {} is out of range: use {} to 65536 (ids below {} are reserved, keys come "
        "from the lower half and values from the upper half)",
        what, s.vocab_size, 2 * kFirstSymbolId + 2, kFirstSymbolId);
  }
  if (s.seq_len < 4 || s.seq_len % 2 != 0) {
    fail("{}: sequence length {} must be even and at least 4", what, s.seq_len);
  }
  if (s.pairs < 1 || 4 * s.pairs > s.seq_len) {
    fail(
        "{}: {} pairs do not fit a sequence of {}: MQAR needs 4 x pairs <= length (pairs, then "
        "room for their queries)",
        what, s.pairs, s.seq_len);
  }
  const int keys = mqar_first_value(s.vocab_size) - mqar_first_key();
  const int values = s.vocab_size - mqar_first_value(s.vocab_size);
  if (s.pairs > keys || s.pairs > values) {
    fail(
        "{}: {} pairs need {} distinct keys and values, but vocabulary {} has {} keys and {} "
        "values: raise --vocab",
        what, s.pairs, s.pairs, s.vocab_size, keys, values);
  }
  if (s.vocab_size <= s.seq_len) {
    fail("{}: the vocabulary ({}) must be larger than the sequence length ({})", what, s.vocab_size,
         s.seq_len);
  }
  if (!(s.power_a > 0 && s.power_a < 1)) {
    fail("{}: the power-law exponent a = {} must be in (0, 1)", what, s.power_a);
  }
}

std::vector<double> mqar_gap_probabilities(int space, double a) {
  std::vector<double> p(static_cast<std::size_t>(space));
  double total = 0;
  for (int g = 0; g < space; ++g) {
    p[static_cast<std::size_t>(g)] = a * std::pow(static_cast<double>(g + 1), a - 1.0);
    total += p[static_cast<std::size_t>(g)];
  }
  for (double& v : p) v /= total;
  return p;
}

MqarExample make_mqar_example(Rng& rng, const MqarShape& s) {
  const int L = s.seq_len, P = s.pairs;
  const int context = 2 * P;
  const int space = (L - context) / 2;
  MqarExample ex;
  ex.tokens.assign(static_cast<std::size_t>(L) + 1, -1);
  ex.labels.assign(static_cast<std::size_t>(L) + 1, 0);
  const std::int32_t first_value = mqar_first_value(s.vocab_size);
  ex.keys = distinct(rng, mqar_first_key(), first_value - mqar_first_key(), P);
  ex.values = distinct(rng, first_value, s.vocab_size - first_value, P);
  for (int i = 0; i < P; ++i) {
    ex.tokens[static_cast<std::size_t>(2 * i)] = ex.keys[static_cast<std::size_t>(i)];
    ex.tokens[static_cast<std::size_t>(2 * i + 1)] = ex.values[static_cast<std::size_t>(i)];
  }
  // Gaps without replacement, each draw from the power law over the gaps still free.
  std::vector<double> weight = mqar_gap_probabilities(space, s.power_a);
  double left = 1.0;
  for (int i = 0; i < P; ++i) {
    double u = rng.uniform() * left;
    int g = 0;
    for (; g < space - 1; ++g) {
      if (weight[static_cast<std::size_t>(g)] == 0) continue;
      if (u < weight[static_cast<std::size_t>(g)]) break;
      u -= weight[static_cast<std::size_t>(g)];
    }
    while (weight[static_cast<std::size_t>(g)] == 0) --g;  // rounding at the end of the range
    left -= weight[static_cast<std::size_t>(g)];
    weight[static_cast<std::size_t>(g)] = 0;
    ex.gaps.push_back(g);
    const std::size_t query = static_cast<std::size_t>(context + 2 * g);
    ex.tokens[query] = ex.keys[static_cast<std::size_t>(i)];
    ex.tokens[query + 1] = ex.values[static_cast<std::size_t>(i)];
    ex.labels[query + 1] = 1;
  }
  for (auto& t : ex.tokens) {
    if (t >= 0) continue;
    t = s.noise ? kFirstSymbolId + static_cast<std::int32_t>(rng.below(
                                       static_cast<std::uint64_t>(s.vocab_size - kFirstSymbolId)))
                : kPadId;
  }
  return ex;
}

MqarSummary write_mqar(const MqarOptions& o) {
  MqarShape test = o.train;
  test.seq_len = o.test_seq_len > 0 ? o.test_seq_len : 2 * o.train.seq_len;
  test.pairs = o.test_pairs > 0 ? o.test_pairs : 2 * o.train.pairs;
  check_mqar_shape(o.train, "mqar");
  check_mqar_shape(test, "mqar test split (--test-seq-len, --test-pairs)");
  if (o.train_examples < 1 || o.val_examples < 1) {
    fail("mqar: --train-examples and --val-examples must be at least 1");
  }
  if (o.out_dir.empty()) fail("mqar: pass the output folder with --out");
  const json task = {
      {"kind", "mqar"},
      {"vocab_size", o.train.vocab_size},
      {"keys", {mqar_first_key(), mqar_first_value(o.train.vocab_size)}},
      {"values", {mqar_first_value(o.train.vocab_size), o.train.vocab_size}},
      {"filler", o.train.noise ? "random symbols (noise)" : "<pad> (id 0)"},
      {"power_a", o.train.power_a},
      {"labels", "the value after each query; nothing else"},
      {"seed", o.seed},
      {"train", shape_json(o.train)},
      {"validation", shape_json(o.train)},
      {"test", shape_json(test)},
      {"examples",
       {{"train", o.train_examples}, {"validation", o.val_examples}, {"test", o.test_examples}}}};
  SynthFolder folder(o.out_dir, hex64(checksum64(task.dump())));
  const Tokenizer tokenizer = make_symbol_tokenizer(o.train.vocab_size);
  const auto vocab = static_cast<std::uint32_t>(o.train.vocab_size);
  ProgressOptions popts;
  popts.mode = o.progress;
  popts.unit = "example";
  const std::uint64_t total = o.train_examples + o.val_examples + o.test_examples;
  Progress progress("mqar", static_cast<double>(total), popts);
  MqarSummary summary;
  std::uint64_t done = 0;
  struct Part {
    const char* key;
    const MqarShape* shape;
    std::uint64_t count;
    std::uint64_t stream;
  };
  const Part parts[] = {{"train", &o.train, o.train_examples, 1},
                        {"validation", &o.train, o.val_examples, 2},
                        {"test", &test, o.test_examples, 3}};
  for (const Part& part : parts) {
    if (part.count == 0) continue;
    ShardLayout layout;
    layout.label_mask = true;
    layout.record_tokens = static_cast<std::uint32_t>(part.shape->seq_len + 1);
    SynthSplit& split = folder.split(part.key, vocab, layout);
    Rng rng(mix64(o.seed ^ mix64(part.stream)));
    for (std::uint64_t i = 0; i < part.count; ++i) {
      const MqarExample ex = make_mqar_example(rng, *part.shape);
      split.add(ex.tokens, ex.labels);
      summary.tokens += ex.tokens.size();
      progress.update(static_cast<double>(++done));
    }
  }
  progress.finish(static_cast<double>(done));
  folder.commit(tokenizer, "symbols: one piece per id (no text)", task);
  summary.train_examples = o.train_examples;
  summary.val_examples = o.val_examples;
  summary.test_examples = o.test_examples;
  return summary;
}

}  // namespace difftx::data
