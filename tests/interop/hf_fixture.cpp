// Test helper of the transformers interoperability check (run_on_gpu.sh, check_hf.py), not a
// user command: trains a small tokenizer, writes randomly initialised difftx checkpoints, and
// dumps what difftx computes for them (token ids of a paragraph, logits, greedy generation)
// into a safetensors file that check_hf.py compares with transformers.
//
//   difftx_hf_fixture tokenizer --corpus FILE... --vocab N --out tokenizer.model
//   difftx_hf_fixture init --config model.json --seed S --tokenizer tokenizer.model --out DIR
//   difftx_hf_fixture dump --checkpoint DIR --text paragraph.txt --out dump.safetensors
//   difftx_hf_fixture compare --checkpoint DIR --reference logits.safetensors
//       (logits of an imported checkpoint vs transformers' "logits" for "logit_ids"; exit 1 if
//       max |diff| > 1e-4 of the logit scale)
#include <fmt/core.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <sstream>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/core/safetensors.h"
#include "difftx/cpu/cpu_backend.h"
#include "difftx/data/tokenizer.h"
#include "difftx/model/checkpoint.h"
#include "difftx/model/model.h"

namespace {
namespace fs = std::filesystem;
using namespace difftx;

void train_tokenizer(const std::vector<fs::path>& corpus, int vocab, const fs::path& out) {
  std::vector<std::string> lines;
  for (const auto& f : corpus) {
    std::istringstream in(read_file_text(f));
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.size() < 8000) lines.push_back(line);
    }
  }
  data::TokenizerTrainOptions options;
  options.vocab_size = vocab;
  const data::Tokenizer tok = data::Tokenizer::train(lines, options);
  tok.save(out);
  fmt::print("tokenizer: {} pieces from {} lines -> {}\n", tok.vocab_size(), lines.size(),
             out.string());
}

// Random initialisation with visible structure: norm gains 1 + N(0, 0.3) (the per-head gain
// too, so folding it into o_proj is exercised) and lambda vectors N(0, 0.3).
void init_checkpoint(const fs::path& config_path, std::uint64_t seed, const fs::path& tokenizer,
                     const fs::path& out) {
  const ModelConfig c = load_model_config(config_path);
  ParamSet p = ParamSet::initialised(c, seed, DType::f32, Device::cpu);
  std::mt19937_64 rng(seed + 17);
  std::normal_distribution<double> normal(0.0, 1.0);
  for (std::size_t i = 0; i < p.size(); ++i) {
    const bool norm = p.name(i).find("norm.weight") != std::string::npos;
    const bool lambda = p.name(i).find("lambda_") != std::string::npos;
    if (!norm && !lambda) continue;
    float* v = p.tensor(i).data<float>();
    for (std::int64_t k = 0; k < p.tensor(i).numel(); ++k) {
      v[k] = static_cast<float>(norm ? 1.0 + 0.3 * normal(rng) : 0.3 * normal(rng));
    }
  }
  save_model_checkpoint(out, nlohmann::json{{"model", c.to_json()}}, c, p, tokenizer, 0);
  fmt::print("checkpoint: {} ({}, h={}, h_kv={}, d={}) -> {}\n", config_path.string(),
             attention_kind_name(c.attention), c.n_heads, c.n_kv_heads, c.head_dim, out.string());
}

Tensor ids_tensor(const std::vector<std::int32_t>& ids) {
  Tensor t = Tensor::empty({static_cast<std::int64_t>(ids.size())}, DType::i32);
  if (!ids.empty()) std::memcpy(t.raw(), ids.data(), ids.size() * sizeof(std::int32_t));
  return t;
}

void dump(const fs::path& checkpoint, const fs::path& text_path, int logit_tokens,
          int prompt_tokens, int generate, const fs::path& out) {
  ModelCheckpoint ck = load_model_checkpoint(checkpoint);
  DIFFTX_CHECK(!ck.tokenizer.empty(), "{} has no tokenizer.model", checkpoint.string());
  const data::Tokenizer tok = data::Tokenizer::load(ck.tokenizer);
  const std::string text = read_file_text(text_path);
  const std::vector<std::int32_t> text_ids = tok.encode(text);
  DIFFTX_CHECK(static_cast<int>(text_ids.size()) >= logit_tokens,
               "the paragraph has only {} tokens", text_ids.size());

  auto backend = make_cpu_backend(DType::f32);
  const ModelConfig config = ck.config;
  Model model(config, *backend, std::move(ck.params));

  // Logits of BOS + the first tokens of the paragraph.
  std::vector<std::int32_t> logit_ids = {data::kBosId};
  logit_ids.insert(logit_ids.end(), text_ids.begin(), text_ids.begin() + (logit_tokens - 1));
  Tensor in = ids_tensor(logit_ids).reshape({1, static_cast<std::int64_t>(logit_ids.size())});
  Tensor logits = model.logits(in);
  logits = logits.reshape({logits.dim(1), logits.dim(2)});

  // Greedy decoding with the KV cache from BOS + a short prompt; stops after EOS.
  std::vector<std::int32_t> prompt = {data::kBosId};
  prompt.insert(prompt.end(), text_ids.begin(), text_ids.begin() + prompt_tokens);
  KvCache cache(model, static_cast<int>(prompt.size()) + generate);
  Tensor step = model.decode(cache, prompt);
  std::vector<std::int32_t> generated;
  for (int n = 0; n < generate; ++n) {
    const std::int64_t V = step.dim(1);
    const std::vector<float> last = step.rows(step.dim(0) - 1, step.dim(0)).to_float_vector();
    const auto best =
        static_cast<std::int32_t>(std::max_element(last.begin(), last.end()) - last.begin());
    DIFFTX_CHECK(best < V, "argmax out of range");
    generated.push_back(best);
    if (best == data::kEosId || n + 1 == generate) break;
    step = model.decode(cache, {best});
  }
  save_safetensors(out, {{"text_ids", ids_tensor(text_ids)},
                         {"logit_ids", ids_tensor(logit_ids)},
                         {"logits", logits},
                         {"prompt_ids", ids_tensor(prompt)},
                         {"generated", ids_tensor(generated)}});
  fmt::print("dump: {} paragraph tokens, logits {}x{}, {} generated -> {}\n", text_ids.size(),
             logits.dim(0), logits.dim(1), generated.size(), out.string());
}

int compare(const fs::path& checkpoint, const fs::path& reference) {
  ModelCheckpoint ck = load_model_checkpoint(checkpoint);
  const SafetensorsFile ref = load_safetensors(reference);
  const Tensor& ids = ref.at("logit_ids");
  const std::vector<float> theirs = ref.at("logits").to_float_vector();
  DIFFTX_CHECK(ids.dtype() == DType::i32, "{}: logit_ids must be integers", reference.string());
  auto backend = make_cpu_backend(DType::f32);
  const ModelConfig config = ck.config;
  Model model(config, *backend, std::move(ck.params));
  const std::vector<float> ours = model.logits(ids.reshape({1, ids.numel()})).to_float_vector();
  DIFFTX_CHECK(ours.size() == theirs.size(), "logits sizes differ: {} vs {}", ours.size(),
               theirs.size());
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < ours.size(); ++i) {
    diff = std::max(diff, std::abs(double(ours[i]) - double(theirs[i])));
    scale = std::max(scale, std::abs(double(theirs[i])));
  }
  const bool ok = diff <= 1e-4 * scale;
  fmt::print(
      "[{}] {}: {} {}, {} layers, h={} h_kv={}, rope {}: logits max|diff| {:.3e}, scale {:.3f}, "
      "ratio {:.2e} (limit 1e-04)\n",
      ok ? "PASS" : "FAIL", checkpoint.string(), attention_kind_name(config.attention),
      config.tied_embeddings ? "tied" : "untied", config.n_layers, config.n_heads,
      config.n_kv_heads, rope_style_name(config.rope_style), diff, scale, diff / scale);
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"difftx test helper for the transformers interoperability check"};
  app.require_subcommand(1);

  std::vector<fs::path> corpus;
  int vocab = 1000;
  fs::path out, config, tokenizer, checkpoint, text;
  std::uint64_t seed = 1;
  int logit_tokens = 48, prompt_tokens = 8, generate = 32;

  CLI::App* t = app.add_subcommand("tokenizer", "Train a difftx tokenizer on text files");
  t->add_option("--corpus", corpus, "Text files (one sentence per line)")->required();
  t->add_option("--vocab", vocab, "Vocabulary size")->capture_default_str();
  t->add_option("--out", out, "tokenizer.model to write")->required();
  t->callback([&] { train_tokenizer(corpus, vocab, out); });

  CLI::App* i = app.add_subcommand("init", "Write a randomly initialised checkpoint");
  i->add_option("--config", config, "Model config JSON")->required();
  i->add_option("--seed", seed, "Initialisation seed")->capture_default_str();
  i->add_option("--tokenizer", tokenizer, "tokenizer.model to include")->required();
  i->add_option("--out", out, "Checkpoint folder")->required();
  i->callback([&] { init_checkpoint(config, seed, tokenizer, out); });

  CLI::App* d = app.add_subcommand("dump", "Dump difftx token ids, logits and greedy generation");
  d->add_option("--checkpoint", checkpoint, "Checkpoint folder")->required();
  d->add_option("--text", text, "Paragraph to tokenize")->required();
  d->add_option("--logit-tokens", logit_tokens, "Sequence length of the logits")
      ->capture_default_str();
  d->add_option("--prompt-tokens", prompt_tokens, "Paragraph tokens after BOS in the prompt")
      ->capture_default_str();
  d->add_option("--generate", generate, "Tokens to generate greedily")->capture_default_str();
  d->add_option("--out", out, "safetensors file to write")->required();
  d->callback([&] { dump(checkpoint, text, logit_tokens, prompt_tokens, generate, out); });

  fs::path reference;
  int status = 0;
  CLI::App* c =
      app.add_subcommand("compare", "Compare an imported checkpoint's logits with transformers'");
  c->add_option("--checkpoint", checkpoint, "Checkpoint folder")->required();
  c->add_option("--reference", reference, "safetensors with logit_ids (i32) and logits (f32)")
      ->required();
  c->callback([&] { status = compare(checkpoint, reference); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    fmt::print(stderr, "difftx_hf_fixture: error: {}\n", e.what());
    return 1;
  }
  return status;
}
