// In-context classification data (icl_data.h): built-in task, JSONL loading, demonstrations.
#include "difftx/eval/icl_data.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/eval/random.h"

namespace difftx::eval {
namespace {

int word_count(const std::string& s) {
  int n = 0;
  bool in_word = false;
  for (char c : s) {
    const bool space = c == ' ';
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

// Splits `all` into `test_count` test examples (taken from labels in turn, seeded) and the pool.
void split_examples(std::vector<IclExample> all, int test_count, std::uint64_t seed,
                    IclTask& task) {
  Rng rng(derive_seed(seed, {0x69636c73ull}));
  rng.shuffle(all);
  std::map<std::string, std::vector<IclExample>> by_label;
  for (auto& e : all) by_label[e.label].push_back(std::move(e));
  int taken = 0;
  while (taken < test_count) {
    bool any = false;
    for (auto& [label, examples] : by_label) {
      if (taken >= test_count) break;
      if (examples.size() <= 1) continue;  // keep one of each label for the pool
      task.test.push_back(std::move(examples.back()));
      examples.pop_back();
      ++taken;
      any = true;
    }
    if (!any) break;
  }
  for (auto& [label, examples] : by_label) {
    for (auto& e : examples) task.pool.push_back(std::move(e));
  }
  rng.shuffle(task.pool);
  rng.shuffle(task.test);
}

}  // namespace

IclTask builtin_icl_task(const HeldOutText& text, int classes, int test_count, std::uint64_t seed) {
  static const std::vector<std::string> names = {
      "alpha", "beta",  "gamma",  "delta", "epsilon", "zeta", "eta",     "theta",
      "iota",  "kappa", "lambda", "mu",    "nu",      "xi",   "omicron", "pi"};
  DIFFTX_CHECK(classes >= 2 && std::size_t(classes) <= names.size(),
               "--icl-classes must be in [2, {}], got {}", names.size(), classes);
  DIFFTX_CHECK(test_count >= 1, "--icl-test must be >= 1, got {}", test_count);
  // usable sentences per document
  std::vector<std::pair<std::size_t, std::vector<std::string>>> docs;
  for (std::size_t d = 0; d < text.documents().size(); ++d) {
    std::vector<std::string> usable;
    for (auto& s : split_sentences(text.documents()[d])) {
      const int w = word_count(s);
      if (w >= 4 && w <= 40) usable.push_back(std::move(s));
    }
    docs.emplace_back(d, std::move(usable));
  }
  std::stable_sort(docs.begin(), docs.end(),
                   [](const auto& a, const auto& b) { return a.second.size() > b.second.size(); });
  const std::size_t need = std::size_t(test_count / classes + 2);
  if (docs.size() < std::size_t(classes) || docs[std::size_t(classes) - 1].second.size() < need) {
    fail(
        "icl: the built-in task needs {} held-out documents with at least {} sentences of 4-40 "
        "words each; this text has {} documents (use fewer --icl-classes or more text)",
        classes, need, docs.size());
  }
  docs.resize(std::size_t(classes));
  std::sort(docs.begin(), docs.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  IclTask task;
  task.name = "builtin";
  std::vector<IclExample> all;
  std::vector<std::string> parts;
  for (std::size_t c = 0; c < docs.size(); ++c) {
    task.labels.push_back(names[c]);
    parts.push_back(names[c] + " = document " + std::to_string(docs[c].first));
    for (auto& s : docs[c].second) all.push_back({s, names[c]});
  }
  std::sort(task.labels.begin(), task.labels.end());
  task.description = "built-in: which held-out document a sentence comes from (";
  for (std::size_t i = 0; i < parts.size(); ++i) task.description += (i ? ", " : "") + parts[i];
  task.description += ")";
  split_examples(std::move(all), test_count, seed, task);
  return task;
}

IclTask load_icl_jsonl(const std::filesystem::path& path, int test_count, std::uint64_t seed) {
  DIFFTX_CHECK(test_count >= 1, "--icl-test must be >= 1, got {}", test_count);
  const std::string text = read_file_text(path);
  std::istringstream in(text);
  std::string line;
  std::vector<IclExample> all;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error&) {
      fail("{}:{}: not valid JSON; each line must be {{\"text\": \"...\", \"label\": \"...\"}}",
           path.string(), lineno);
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string() || !j.contains("label") ||
        !j["label"].is_string()) {
      fail("{}:{}: needs string fields \"text\" and \"label\"", path.string(), lineno);
    }
    IclExample e{j["text"].get<std::string>(), j["label"].get<std::string>()};
    if (e.text.empty() || e.label.empty()) {
      fail("{}:{}: \"text\" and \"label\" must not be empty", path.string(), lineno);
    }
    if (e.label.find('\n') != std::string::npos) {
      fail("{}:{}: a label must not contain a line break", path.string(), lineno);
    }
    all.push_back(std::move(e));
  }
  IclTask task;
  task.name = path.string();
  for (const auto& e : all) task.labels.push_back(e.label);
  std::sort(task.labels.begin(), task.labels.end());
  task.labels.erase(std::unique(task.labels.begin(), task.labels.end()), task.labels.end());
  if (task.labels.size() < 2) {
    fail("{}: {} examples with {} distinct label(s); classification needs at least 2 labels",
         path.string(), all.size(), task.labels.size());
  }
  if (all.size() < std::size_t(test_count) + task.labels.size()) {
    fail(
        "{}: {} examples are too few for {} test examples plus a demonstration of each of the {} "
        "labels (lower --icl-test)",
        path.string(), all.size(), test_count, task.labels.size());
  }
  task.description = "JSONL " + path.string() + " (" + std::to_string(all.size()) + " examples, " +
                     std::to_string(task.labels.size()) + " labels)";
  split_examples(std::move(all), test_count, seed, task);
  return task;
}

std::vector<IclExample> pick_demonstrations(const IclTask& task, int shots, std::uint64_t seed) {
  DIFFTX_CHECK(shots >= 0, "--shots values must be >= 0, got {}", shots);
  DIFFTX_CHECK(std::size_t(shots) <= task.pool.size(),
               "icl: {} demonstrations asked, the pool holds {}", shots, task.pool.size());
  Rng rng(derive_seed(seed, {0x64656d6full, std::uint64_t(shots)}));
  std::map<std::string, std::vector<const IclExample*>> by_label;
  for (const auto& e : task.pool) by_label[e.label].push_back(&e);
  for (auto& [label, v] : by_label) rng.shuffle(v);
  std::vector<IclExample> out;
  std::map<std::string, std::size_t> used;
  while (int(out.size()) < shots) {
    for (auto& [label, v] : by_label) {
      if (int(out.size()) >= shots) break;
      if (used[label] < v.size()) out.push_back(*v[used[label]++]);
    }
  }
  rng.shuffle(out);
  return out;
}

std::string icl_format_demo(const IclExample& e) {
  return "Input: " + e.text + "\nLabel: " + e.label + "\n\n";
}
std::string icl_format_query(const std::string& text) {
  return "Input: " + text + "\nLabel:";
}
std::string icl_label_continuation(const std::string& label) {
  return " " + label;
}

}  // namespace difftx::eval
