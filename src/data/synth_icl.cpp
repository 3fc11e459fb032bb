// icl task data (see synth_icl.h).
#include "difftx/data/synth_icl.h"

#include <fmt/format.h>

#include <map>
#include <nlohmann/json.hpp>

#include "difftx/core/checksum.h"
#include "difftx/core/error.h"
#include "difftx/data/random.h"
#include "difftx/data/synth_source.h"
#include "difftx/data/synth_writer.h"

namespace difftx::data {
using nlohmann::json;

std::string icl_example_text(const std::string& text, const std::string& label) {
  return std::string(kIclInputPrefix) + text + kIclLabelPrefix + " " + label;
}

namespace {

// One demonstration encoded in three parts whose ids concatenate to the whole's (each part
// starts at a unit boundary: the text start, the space before the label, a newline).
struct EncodedExample {
  std::vector<std::int32_t> prompt, label, separator;
  std::size_t size() const { return prompt.size() + label.size() + separator.size(); }
};

struct Labelled {
  std::string text, label;
  EncodedExample ids;  // filled once the tokenizer exists
};

void encode_pool(const Tokenizer& tok, std::map<std::string, std::vector<Labelled>>& pool) {
  const std::vector<std::int32_t> separator = tok.encode(kIclSeparator);
  for (auto& [label, v] : pool) {
    const std::vector<std::int32_t> label_ids = tok.encode(" " + label);
    for (Labelled& e : v) {
      e.ids.prompt = tok.encode(std::string(kIclInputPrefix) + e.text + kIclLabelPrefix);
      e.ids.label = label_ids;
      e.ids.separator = separator;
    }
  }
}

// Pools of labelled sentences by label.
using Pool = std::map<std::string, std::vector<Labelled>>;

Pool make_pool(const std::vector<SourceDocument>& docs, const std::vector<std::size_t>& which,
               const IclOptions& o) {
  Pool pool;
  for (std::size_t d : which) {
    for (const std::string& s : docs[d].sentences) {
      const auto n = static_cast<int>(s.size());
      if (n < o.min_chars || n > o.max_chars) continue;
      pool[docs[d].category].push_back({s, docs[d].category, {}});
    }
  }
  return pool;
}

std::uint64_t pool_size(const Pool& p) {
  std::uint64_t n = 0;
  for (const auto& [label, v] : p) n += v.size();
  return n;
}

std::string pool_jsonl(const Pool& p) {
  std::string out;
  for (const auto& [label, v] : p) {
    for (const Labelled& e : v) out += json{{"text", e.text}, {"label", e.label}}.dump() + "\n";
  }
  return out;
}

}  // namespace

IclSummary write_icl(const IclOptions& o) {
  if (o.context < 32) fail("icl: --context {} is too short: use at least 32", o.context);
  if (o.min_chars < 1 || o.max_chars < o.min_chars) {
    fail("icl: sentence lengths {}..{} are not a range", o.min_chars, o.max_chars);
  }
  if (o.train_episodes < 1 || o.val_episodes < 1 || o.test_episodes < 1) {
    fail("icl: every split needs at least one episode");
  }
  if (o.out_dir.empty()) fail("icl: pass the output folder with --out");
  const std::vector<SourceDocument> docs = load_source_documents({}, o.brown_dir);
  const SourceSplit split = split_source_documents(docs, o.val_fraction, o.seed);
  Pool pools[3] = {make_pool(docs, split.train, o), make_pool(docs, split.validation, o),
                   make_pool(docs, split.test, o)};
  std::vector<std::string> labels;
  for (const auto& [label, v] : pools[0]) labels.push_back(label);
  for (int p = 1; p < 3; ++p) {
    if (pools[p].empty()) fail("icl: a held-out split has no sentences: raise --val-fraction");
  }

  std::vector<std::string> lines;
  for (std::size_t i : split.train) append_training_lines(docs[i].text, lines);
  for (const auto& label : labels) lines.push_back(icl_example_text("", label));
  std::string tokenizer_source;
  const Tokenizer tok = task_tokenizer(o.tokenizer, o.vocab_size, lines, &tokenizer_source);
  lines.clear();
  for (Pool& p : pools) encode_pool(tok, p);

  json task = {{"kind", "icl"},
               {"source", "Brown corpus: sentences labelled with their document's category"},
               {"labels", labels},
               {"context", o.context},
               {"record_tokens", o.context + 1},
               {"template",
                {{"input_prefix", kIclInputPrefix},
                 {"label_prefix", kIclLabelPrefix},
                 {"label_separator", " "},
                 {"separator", kIclSeparator}}},
               {"labelled_targets", "the tokens of ' <label>' after each 'Genre:'"},
               {"seed", o.seed}};
  json key = task;
  key["tokenizer"] = tok.fingerprint();
  key["episodes"] = {o.train_episodes, o.val_episodes, o.test_episodes};
  key["val_fraction"] = o.val_fraction;
  key["chars"] = {o.min_chars, o.max_chars};
  SynthFolder folder(o.out_dir, hex64(checksum64(key.dump())));
  const auto vocab = static_cast<std::uint32_t>(tok.vocab_size());
  const std::size_t R = static_cast<std::size_t>(o.context) + 1;
  ShardLayout layout;
  layout.label_mask = true;
  layout.record_tokens = static_cast<std::uint32_t>(R);
  IclSummary summary;
  ProgressOptions popts;
  popts.mode = o.progress;
  popts.unit = "episode";
  Progress progress("icl", static_cast<double>(o.train_episodes + o.val_episodes + o.test_episodes),
                    popts);
  std::uint64_t done = 0, demos_total = 0;
  const char* keys[3] = {"train", "validation", "test"};
  const std::uint64_t counts[3] = {o.train_episodes, o.val_episodes, o.test_episodes};
  for (int p = 0; p < 3; ++p) {
    SynthSplit& out = folder.split(keys[p], vocab, layout);
    Rng rng(mix64(o.seed ^ mix64(static_cast<std::uint64_t>(p) + 0x1c1ULL)));
    std::vector<std::string> present;
    for (const auto& [label, v] : pools[p]) present.push_back(label);
    for (std::uint64_t e = 0; e < counts[p]; ++e) {
      std::vector<std::int32_t> ids;
      std::vector<std::uint8_t> mask;
      int demos = 0, misses = 0;
      while (misses < 8) {
        // A label uniformly, then one of its sentences.
        const std::string& label = present[rng.below(present.size())];
        const auto& v = pools[p].at(label);
        const EncodedExample& x = v[rng.below(v.size())].ids;
        if (ids.size() + x.size() > R) {
          ++misses;  // try a shorter one a few times, then close the episode
          continue;
        }
        auto append = [&](const std::vector<std::int32_t>& part, std::uint8_t labelled) {
          ids.insert(ids.end(), part.begin(), part.end());
          mask.insert(mask.end(), part.size(), labelled);
        };
        append(x.prompt, 0);
        append(x.label, 1);
        append(x.separator, 0);
        ++demos;
      }
      if (demos == 0) {
        fail(
            "icl: no sentence fits a context of {} tokens: raise --context or lower "
            "--max-chars",
            o.context);
      }
      ids.resize(R, kPadId);
      mask.resize(R, 0);
      out.add(ids, mask);
      if (p == 0) demos_total += static_cast<std::uint64_t>(demos);
      progress.update(static_cast<double>(++done));
    }
  }
  progress.finish(static_cast<double>(done));
  summary.train_pool = pool_size(pools[0]);
  summary.val_pool = pool_size(pools[1]);
  summary.test_pool = pool_size(pools[2]);
  task["files"] = {"icl/task.json", "icl/demos.jsonl", "icl/val.jsonl", "icl/test.jsonl"};
  task["pools"] = {
      {"train", summary.train_pool}, {"validation", summary.val_pool}, {"test", summary.test_pool}};
  folder.add_file("icl/task.json", task.dump(2) + "\n");
  folder.add_file("icl/demos.jsonl", pool_jsonl(pools[0]));
  folder.add_file("icl/val.jsonl", pool_jsonl(pools[1]));
  folder.add_file("icl/test.jsonl", pool_jsonl(pools[2]));
  summary.train_episodes = o.train_episodes;
  summary.val_episodes = o.val_episodes;
  summary.test_episodes = o.test_episodes;
  summary.mean_demonstrations =
      static_cast<double>(demos_total) / static_cast<double>(o.train_episodes);
  folder.commit(tok, tokenizer_source, task);
  return summary;
}

}  // namespace difftx::data
