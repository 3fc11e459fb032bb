// Multi-query associative recall (MQAR, Zoology/BASED) as task data: each example lists P
// key-value pairs (keys from the lower half of the vocabulary, values from the upper half,
// distinct within the example), then asks each key again at a gap drawn from a power law
// (a = 0.01: mostly short gaps) and labels only the value that follows each query. Filler is
// <pad> or random symbols (noise). Examples are records of L + 1 tokens with a label mask.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "difftx/core/progress.h"
#include "difftx/data/random.h"

namespace difftx::data {

struct MqarShape {
  int vocab_size = 8192;
  int seq_len = 256;  // L: inputs per example; an example holds L + 1 tokens
  int pairs = 16;     // P
  bool noise = false;
  double power_a = 0.01;
};

struct MqarOptions {
  MqarShape train;       // train and validation examples
  int test_seq_len = 0;  // 0 = 2 * seq_len (extrapolation to longer contexts)
  int test_pairs = 0;    // 0 = 2 * pairs (and more pairs)
  std::uint64_t train_examples = 100'000;
  std::uint64_t val_examples = 3'000;
  std::uint64_t test_examples = 3'000;
  std::uint64_t seed = 1;
  std::filesystem::path out_dir;
  ProgressMode progress = ProgressMode::automatic;
};

struct MqarExample {
  std::vector<std::int32_t> tokens;        // (L + 1)
  std::vector<std::uint8_t> labels;        // (L + 1): 1 at each value that follows a query
  std::vector<std::int32_t> keys, values;  // (P), in context order
  std::vector<int> gaps;                   // (P): query of keys[i] at 2P + 2 * gaps[i]
};

// Ranges of the symbols: keys [kFirstSymbolId, V / 2), values [V / 2, V).
std::int32_t mqar_first_key();
std::int32_t mqar_first_value(int vocab_size);

// Throws a difftx::Error naming the option if the shape is impossible (odd L, 4P > L, too
// few keys or values, vocabulary not larger than L).
void check_mqar_shape(const MqarShape& shape, const std::string& what);

// The power law of the gaps: weight of gap g in [0, space) is a * (g + 1)^(a - 1), normalised.
std::vector<double> mqar_gap_probabilities(int space, double power_a);

// One example drawn from `rng`.
MqarExample make_mqar_example(Rng& rng, const MqarShape& shape);

struct MqarSummary {
  std::uint64_t train_examples = 0, val_examples = 0, test_examples = 0;
  std::uint64_t tokens = 0;
};

// Writes the task data folder (train/val at the training shape, test at the test shape) with
// a symbol tokenizer of vocab_size pieces and meta.json's "task" description.
MqarSummary write_mqar(const MqarOptions& options);

}  // namespace difftx::data
