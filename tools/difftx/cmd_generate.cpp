// `difftx generate`: load a checkpoint (or a run folder's newest one) and stream continuations
// of a prompt (from the command line, a file or stdin), decoding with the KV cache. Every
// option and the prompt are checked before anything is printed.
#include <fmt/core.h>

#include <cstdio>
#include <iostream>
#include <iterator>
#include <random>

#include "cli_options.h"
#include "command_registry.h"
#include "difftx/core/atomic_file.h"
#include "difftx/core/number_format.h"
#include "difftx/generate/generator.h"
#include "difftx/model/checkpoint.h"
#include "difftx/runtime/backend_factory.h"
#include "difftx/runtime/checkpoint_store.h"
#include "difftx/runtime/model_loading.h"

namespace difftx::cli {
namespace {

struct GenerateArgs {
  std::string checkpoint;
  std::optional<std::string> prompt;
  std::optional<std::string> prompt_file;
  std::string device = "cpu";
  std::optional<std::uint64_t> seed;
  std::vector<std::string> stop;
  int samples = 1;
  GenerateOptions options;
};

// Removes one trailing line end ("\n" or "\r\n"): files and piped text usually end with one.
std::string without_final_newline(std::string text) {
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  return text;
}

std::string read_prompt(const GenerateArgs& a) {
  if (a.prompt_file) return without_final_newline(read_file_text(*a.prompt_file));
  if (*a.prompt == "-") {
    std::string text{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
    if (std::cin.bad()) fail("--prompt -: cannot read the prompt from stdin");
    return without_final_newline(text);
  }
  return *a.prompt;
}

const CommandRegistration reg{
    40, [](CLI::App& app) {
      auto a = std::make_shared<GenerateArgs>();
      auto* cmd = app.add_subcommand("generate", "Generate text from a checkpoint with a KV cache");
      cmd->add_option("--checkpoint", a->checkpoint,
                      "A checkpoint folder, or a run folder (its newest checkpoint)")
          ->required()
          ->type_name("DIR");
      auto* prompt =
          cmd->add_option("--prompt", a->prompt, "Text to continue; - reads it from stdin")
              ->type_name("TEXT");
      auto* prompt_file =
          cmd->add_option("--prompt-file", a->prompt_file, "Read the text to continue from a file")
              ->type_name("FILE");
      prompt->excludes(prompt_file);
      cmd->add_option("--max-tokens", a->options.max_new_tokens,
                      "Tokens to generate at most (fewer if the model's context fills first)")
          ->capture_default_str()
          ->check(integer_in<int>(0));
      cmd->add_option("--temperature", a->options.sampling.temperature,
                      "Sampling temperature (0 = greedy)")
          ->capture_default_str();
      cmd->add_option("--top-k", a->options.sampling.top_k,
                      "Keep the k most probable tokens (0 = off)")
          ->capture_default_str()
          ->check(integer_in<int>(0));
      cmd->add_option("--top-p", a->options.sampling.top_p, "Nucleus sampling mass (1 = off)")
          ->capture_default_str();
      cmd->add_option(
             "--seed", a->seed,
             "Random seed (default: a random one, printed so the output can be reproduced)")
          ->check(integer_in<std::uint64_t>(0));
      cmd->add_option("--samples", a->samples, "Continuations to generate (sample i uses seed + i)")
          ->capture_default_str()
          ->check(integer_in<int>(1, 10000));
      cmd->add_option("--stop", a->stop,
                      "Stop a sample when its text contains this string (not printed); repeatable; "
                      "\\n and \\t "
                      "are a newline and a tab")
          ->type_name("TEXT");
      cmd->add_option("--device", a->device, "cpu or cuda")->capture_default_str();
      cmd->callback([a, prompt, prompt_file] {
        // Everything that can be wrong with the options is reported before anything is printed.
        if (prompt->count() == 0 && prompt_file->count() == 0) {
          fail(
              "give the text to continue with --prompt TEXT, --prompt-file FILE or --prompt - "
              "(stdin)");
        }
        for (const auto& s : a->stop) a->options.stop.push_back(unescape(s));
        a->options.sampling.seed =
            a->seed ? *a->seed
                    : (std::uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
        validate_generate_options(a->options);
        const std::string text = read_prompt(*a);

        const std::filesystem::path dir = resolve_checkpoint(a->checkpoint);
        ModelCheckpoint ck = load_model_checkpoint(dir);
        if (ck.tokenizer.empty()) {
          fail(
              "checkpoint '{}' has no tokenizer.model, so text cannot be encoded (an import of a "
              "Hugging Face "
              "folder without tokenizer.model?)",
              dir.string());
        }
        data::Tokenizer tokenizer = data::Tokenizer::load(ck.tokenizer);
        auto backend = make_backend(a->device);
        Model model(ck.config, *backend, params_for_backend(ck.params, *backend));
        const PreparedPrompt prepared = prepare_prompt(model, tokenizer, text, a->options);

        SampleCallbacks callbacks;
        callbacks.begin = [&](int i, std::uint64_t seed) {
          if (a->samples > 1)
            fmt::print("{}=== sample {}/{} (seed {})\n", i > 0 ? "\n" : "", i + 1, a->samples,
                       seed);
          fmt::print("{}", text);
          std::fflush(stdout);
        };
        callbacks.text = [](int, const std::string& piece) {
          fmt::print("{}", piece);
          std::fflush(stdout);
        };
        callbacks.end = [&](int, const GenerateResult& r) {
          fmt::print("\n");
          std::fflush(stdout);
          fmt::print(stderr, "[{} prompt tokens, {} generated; stopped: {}; seed {}]\n",
                     with_thousands(std::int64_t(r.prompt_ids.size()) - 1),
                     with_thousands(std::int64_t(r.new_ids.size())),
                     describe_stop(r, prepared.context), r.seed);
          std::fflush(stderr);
        };
        generate_samples(model, tokenizer, prepared, a->options, a->samples, callbacks);
      });
    }};

}  // namespace
}  // namespace difftx::cli
