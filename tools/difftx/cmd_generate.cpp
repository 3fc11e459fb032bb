// `difftx generate`: load a checkpoint (or a run folder's newest one) and stream a continuation
// of a prompt, decoding with the KV cache.
#include <fmt/core.h>

#include <cstdio>

#include "command_registry.h"
#include "difftx/generate/generator.h"
#include "difftx/runtime/backend_factory.h"
#include "difftx/model/checkpoint.h"
#include "difftx/train/trainer.h"

namespace difftx::cli {
namespace {

struct GenerateArgs {
  std::string checkpoint;
  std::string prompt;
  std::string device = "cpu";
  GenerateOptions options;
};

const CommandRegistration reg{40, [](CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate text from a checkpoint with a KV cache");
  cmd->add_option("--checkpoint", a->checkpoint, "A checkpoint folder, or a run folder (its newest checkpoint)")
      ->required();
  cmd->add_option("--prompt", a->prompt, "Text to continue")->required();
  cmd->add_option("--max-tokens", a->options.max_new_tokens, "Tokens to generate at most")->capture_default_str();
  cmd->add_option("--temperature", a->options.sampling.temperature, "Sampling temperature (0 = greedy)")
      ->capture_default_str();
  cmd->add_option("--top-k", a->options.sampling.top_k, "Keep the k most probable tokens (0 = off)")
      ->capture_default_str();
  cmd->add_option("--top-p", a->options.sampling.top_p, "Nucleus sampling mass (1 = off)")->capture_default_str();
  cmd->add_option("--seed", a->options.sampling.seed, "Random seed")->capture_default_str();
  cmd->add_option("--device", a->device, "cpu or cuda")->capture_default_str();
  cmd->callback([a] {
    std::filesystem::path dir = a->checkpoint;
    if (!std::filesystem::exists(dir / "model.safetensors") && std::filesystem::is_directory(dir / "checkpoints")) {
      dir = latest_checkpoint(dir);
      if (dir.empty()) fail("run folder '{}' has no complete checkpoint", a->checkpoint);
    }
    ModelCheckpoint ck = load_model_checkpoint(dir);
    if (ck.tokenizer.empty()) fail("checkpoint '{}' has no tokenizer.model", dir.string());
    data::Tokenizer tokenizer = data::Tokenizer::load(ck.tokenizer);
    auto backend = make_backend(a->device);
    ParamSet params;
    for (std::size_t i = 0; i < ck.params.size(); ++i) {
      Tensor t = ck.params.tensor(i).to_dtype(backend->param_dtype());
      params.add(ck.params.name(i), backend->device() == Device::cpu ? t : t.to(backend->device()));
    }
    Model model(ck.config, *backend, std::move(params));
    fmt::print("{}", a->prompt);
    std::fflush(stdout);
    GenerateResult r = generate_text(model, tokenizer, a->prompt, a->options, [](const std::string& piece) {
      fmt::print("{}", piece);
      std::fflush(stdout);
    });
    fmt::print("\n");
    std::fflush(stdout);
    fmt::print(stderr, "[{} prompt tokens, {} generated{}]\n", r.prompt_ids.size() - 1, r.new_ids.size(),
               r.stopped_at_eos ? ", stopped at EOS" : "");
  });
}};

}  // namespace
}  // namespace difftx::cli
