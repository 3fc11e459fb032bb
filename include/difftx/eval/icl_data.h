// In-context classification data (paper section 3.5, many-shot ICL): labelled examples, their
// split into a demonstration pool and test examples, the choice of demonstrations, and the
// prompt format. Two sources: a user JSONL file of {"text": ..., "label": ...} lines, or the
// built-in synthetic task made from held-out text (below).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "difftx/eval/held_out.h"

namespace difftx::eval {

struct IclExample {
  std::string text;
  std::string label;
};

struct IclTask {
  std::string name;  // "builtin" or the JSONL path
  std::string description;
  std::vector<std::string> labels;  // distinct labels, sorted
  std::vector<IclExample> pool;     // demonstrations are drawn from here
  std::vector<IclExample> test;     // evaluated examples (disjoint from the pool)
};

// The built-in task: "which document is this sentence from?". The `classes` held-out documents
// with the most usable sentences (4 to 40 words) become the classes, labelled with the Greek
// letter names "alpha", "beta", ... in document order; every usable sentence of them is an
// example. `test_count` examples (balanced over classes, seeded) are the test set, the rest the
// demonstration pool. Throws if fewer than `classes` documents have enough sentences.
IclTask builtin_icl_task(const HeldOutText& text, int classes, int test_count, std::uint64_t seed);

// A JSONL file: one object per line with non-empty string fields "text" and "label" (labels
// without line breaks); blank lines are skipped. `test_count` examples (seeded) are held out as
// the test set. Throws naming the file and line for malformed lines, and for fewer than two
// labels or too few examples.
IclTask load_icl_jsonl(const std::filesystem::path& path, int test_count, std::uint64_t seed);

// `shots` demonstrations from the pool: labels taken in turn (balanced), examples of each label
// in a seeded order, then the whole list in a seeded order. Throws if the pool is too small.
std::vector<IclExample> pick_demonstrations(const IclTask& task, int shots, std::uint64_t seed);

// Prompt format. A prompt is EOS, then format_demo(d) for each demonstration, then
// format_query(text); the candidates are label_continuation(label) for every label.
std::string icl_format_demo(const IclExample& example);  // "Input: {text}\nLabel: {label}\n\n"
std::string icl_format_query(const std::string& text);   // "Input: {text}\nLabel:"
std::string icl_label_continuation(const std::string& label);  // " {label}"

}  // namespace difftx::eval
