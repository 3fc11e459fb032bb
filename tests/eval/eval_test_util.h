// Helpers for the evaluation tests: temporary folders, a small tokenizer trained on synthetic
// sentences, tiny models of each attention kind wrapped as EvalModels, and tiny checkpoints on
// disk for the CLI tests.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "difftx/cpu/cpu_backend.h"
#include "difftx/data/tokenizer.h"
#include "difftx/eval/models.h"
#include "difftx/model/checkpoint.h"
#include "difftx/model/params.h"

namespace difftx::eval::testing {
namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "difftx-eval-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  fs::path operator/(const std::string& name) const { return path / name; }
};

// Sentences of a small grammar, with digits so numbers tokenize.
inline std::vector<std::string> grammar_sentences(int count, std::uint64_t seed) {
  const char* subjects[] = {"The cat",   "A dog",       "The old man",
                            "My sister", "The teacher", "A bird"};
  const char* verbs[] = {"sees", "likes", "follows", "finds", "calls", "helps"};
  const char* objects[] = {"the house",  "a red ball", "the river",
                           "our friend", "the garden", "a small boat"};
  std::mt19937_64 rng(seed);
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    std::string s =
        std::string(subjects[rng() % 6]) + " " + verbs[rng() % 6] + " " + objects[rng() % 6];
    if (i % 7 == 3) s += " at " + std::to_string(rng() % 1000);
    out.push_back(s + ".");
  }
  return out;
}

// A 384-piece BPE tokenizer trained on the grammar (plus the needle wording).
inline const data::Tokenizer& tiny_tokenizer() {
  static const data::Tokenizer tok = [] {
    auto lines = grammar_sentences(400, 1);
    for (int i = 0; i < 40; ++i)
      lines.push_back("The special magic Paris number is: " + std::to_string(1000 + 37 * i) + ".");
    data::TokenizerTrainOptions o;
    o.vocab_size = 384;
    return data::Tokenizer::train(lines, o);
  }();
  return tok;
}

inline ModelConfig tiny_eval_config(AttentionKind kind, bool gqa, int vocab) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.attention = kind;
  c.n_layers = 2;
  c.head_dim = 8;
  c.n_heads = kind == AttentionKind::diff_v1 ? 2 : 4;
  c.d_model = kind == AttentionKind::diff_v1 ? 2 * c.n_heads * c.head_dim : c.n_heads * c.head_dim;
  c.n_kv_heads = gqa ? c.n_heads / 2 : c.n_heads;
  c.ffn_dim = 48;
  c.max_seq_len = 256;
  c.init_std = 0.2;
  c.lambda_init_std = 0.3;
  c.validate("tiny eval config");
  return c;
}

// An EvalModel around a random model on `backend`.
inline EvalModel tiny_eval_model(Backend& backend, AttentionKind kind, bool gqa,
                                 std::uint64_t seed) {
  EvalModel m;
  m.tokenizer = tiny_tokenizer();
  m.config = tiny_eval_config(kind, gqa, m.tokenizer.vocab_size());
  m.label = attention_kind_name(kind);
  m.parameters = parameter_count(m.config);
  m.model = std::make_unique<Model>(
      m.config, backend,
      ParamSet::initialised(m.config, seed, backend.param_dtype(), backend.device()));
  return m;
}

}  // namespace difftx::eval::testing
