// `difftx train`: one run file (model, data, optim, schedule, train, output) -> a trained model
// with metrics.jsonl and checkpoints under output.dir.
#include <fmt/core.h>

#include "command_registry.h"
#include "difftx/train/trainer.h"

namespace difftx::cli {
namespace {

struct TrainArgs {
  std::string config;
  std::string device;
  std::string out;
  int steps = 0;
  int stop_after = 0;
  bool resume = false;
  bool quiet = false;
};

const CommandRegistration reg{30, [](CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Train a model from a run config (see configs/ and docs/config.md)");
  cmd->add_option("--config", args->config, "Run config JSON (e.g. configs/tiny.json)")->required();
  cmd->add_option("--device", args->device, "Override train.device: cpu or cuda");
  cmd->add_option("--out", args->out, "Override output.dir");
  cmd->add_option("--steps", args->steps, "Override train.steps (and the schedule's horizon)");
  cmd->add_flag("--resume", args->resume, "Continue from the newest checkpoint in the output folder");
  cmd->add_option("--stop-after", args->stop_after,
                  "Stop after this many steps with a checkpoint (resume later with --resume)");
  cmd->add_flag("--quiet", args->quiet, "No progress output (metrics still go to metrics.jsonl)");
  cmd->callback([args] {
    RunConfig cfg = load_run_config(args->config);
    nlohmann::json j = cfg.source;
    if (!args->device.empty()) j["train"]["device"] = args->device;
    if (!args->out.empty()) j["output"]["dir"] = args->out;
    if (args->steps > 0) {
      j["train"]["steps"] = args->steps;
      j["schedule"]["total_steps"] = args->steps;
      if (j["schedule"]["warmup_steps"].get<int>() > args->steps) j["schedule"]["warmup_steps"] = args->steps;
    }
    cfg = RunConfig::from_json(j, args->config);
    TrainOptions options;
    options.resume = args->resume;
    options.quiet = args->quiet;
    if (args->stop_after > 0) options.stop_after = args->stop_after;
    TrainSummary s = train_model(cfg, options);
    fmt::print("trained {} steps: final train loss {:.4f}, validation loss {:.4f} (perplexity {:.2f}); "
               "unigram entropy {:.4f}; {:.0f} tokens/s\ncheckpoint: {}\n",
               s.steps_done, s.last_train_loss, s.final_val_loss, std::exp(s.final_val_loss),
               s.unigram_entropy, s.tokens_per_second, s.checkpoint.string());
  });
}};

}  // namespace
}  // namespace difftx::cli
