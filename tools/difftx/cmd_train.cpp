// `difftx train`: one run file (model, data, optim, schedule, train, output), overridden from
// the command line, -> a trained model with metrics.jsonl and checkpoints under output.dir.
// Ctrl-C / SIGTERM finish the step, save a checkpoint and print how to resume.
#include <fmt/core.h>

#include <cmath>
#include <csignal>

#include "cli_options.h"
#include "command_registry.h"
#include "difftx/core/number_format.h"
#include "difftx/runtime/interrupt.h"
#include "difftx/train/config_overrides.h"
#include "difftx/train/trainer.h"
#include "train_distributed.h"

namespace difftx::cli {
namespace {

struct TrainArgs {
  std::string config;
  ConfigOverrides overrides;
  std::optional<int> stop_after;
  std::string init_from;
  bool resume = false;
  bool overwrite = false;
  bool quiet = false;
  DistArgs dist;  // data parallelism (train_distributed.h)
};

// The command that continues this run: the same config and overrides, with --resume.
std::string resume_command(const TrainArgs& a) {
  std::string cmd = "difftx train --config " + shell_quote(a.config);
  const ConfigOverrides& o = a.overrides;
  if (o.steps) cmd += fmt::format(" --steps {}", *o.steps);
  if (o.device) cmd += " --device " + shell_quote(*o.device);
  if (o.out) cmd += " --out " + shell_quote(*o.out);
  if (o.data) cmd += " --data " + shell_quote(*o.data);
  for (const auto& s : o.set) cmd += " --set " + shell_quote(s);
  return cmd + " --resume";
}

void print_result(const TrainArgs& a, const RunConfig& cfg, const TrainSummary& s) {
  std::string val;
  if (s.final_val_loss) {
    val = fmt::format("validation loss {:.4f} (perplexity {:.2f})", *s.final_val_loss,
                      std::exp(*s.final_val_loss));
  } else {
    val = fmt::format(
        "no evaluation in this run yet (it evaluates {}at step {})",
        cfg.train.eval_every > 0 ? fmt::format("every {} steps and ", cfg.train.eval_every) : "",
        cfg.train.steps);
  }
  const int here = s.steps_done - s.start_step;
  fmt::print(
      "trained {} steps{} (step {} of {}): final train loss {:.4f}, {}; unigram entropy {:.4f}; "
      "{} tokens/s\n",
      with_thousands(std::int64_t(here)),
      s.start_step > 0 ? fmt::format(" after resuming at step {}", s.start_step) : "", s.steps_done,
      cfg.train.steps, s.last_train_loss, val, s.unigram_entropy,
      with_thousands(s.tokens_per_second, 0));
  if (!s.checkpoint.empty()) fmt::print("checkpoint: {}\n", s.checkpoint.string());
  if (s.stop_reason == StopReason::stop_after) {
    fmt::print("stopped at --stop-after {}; continue with: {}\n", s.steps_done, resume_command(a));
  }
}

const CommandRegistration reg{
    30, [](CLI::App& app) {
      auto a = std::make_shared<TrainArgs>();
      auto* cmd = app.add_subcommand(
          "train", "Train a model from a run config (see configs/ and docs/config.md)");
      cmd->add_option("--config", a->config, "Run config JSON (e.g. configs/tiny.json)")
          ->required();
      cmd->add_option("--device", a->overrides.device, "Override train.device: cpu or cuda");
      cmd->add_option("--out", a->overrides.out, "Override output.dir (the run folder)");
      cmd->add_option("--data", a->overrides.data,
                      "Override data.path (a folder written by `difftx data prepare`)")
          ->type_name("PATH");
      cmd->add_option("--steps", a->overrides.steps,
                      "Override train.steps (and the schedule's horizon)")
          ->check(integer_in<int>(1));
      cmd->add_option(
             "--set", a->overrides.set,
             "Override any config field, typed and checked as in the file: section.field=value "
             "(e.g. --set schedule.lr=1e-3 --set train.eval_every=50); repeatable, applied last")
          ->type_name("SECTION.FIELD=VALUE");
      cmd->add_flag("--resume", a->resume,
                    "Continue the run in the output folder from its newest checkpoint");
      cmd->add_flag("--overwrite", a->overwrite,
                    "Start again in an output folder that holds a run: its checkpoints and metrics "
                    "are deleted");
      cmd->add_option("--init-from", a->init_from,
                      "Start a new run from the weights of a checkpoint or run folder "
                      "(fine-tuning: new data, "
                      "schedule and optimizer state; the model sections must agree)")
          ->type_name("CHECKPOINT");
      cmd->add_option("--stop-after", a->stop_after,
                      "Stop with a checkpoint once the run has done this many steps (continue with "
                      "--resume)")
          ->check(integer_in<int>(1));
      cmd->add_flag("--quiet", a->quiet, "No progress output (metrics still go to metrics.jsonl)");
      add_distributed_options(*cmd, a->dist);
      cmd->callback([a] {
        LoadedRunConfig loaded = load_run_config(a->config, a->overrides);
        for (const auto& note : loaded.notes) fmt::print(stderr, "note: {}\n", note);
        TrainOptions options;
        options.resume = a->resume;
        options.overwrite = a->overwrite;
        options.init_from = a->init_from;
        options.stop_after = a->stop_after;
        options.quiet = a->quiet;
        if (train_distributed(a->dist, loaded, options,
                              [&](const TrainSummary& s) { print_result(*a, loaded.config, s); })) {
          return;
        }
        InterruptScope interrupts;
        Trainer trainer(loaded.config, options);
        const TrainSummary s = trainer.run();
        if (s.stop_reason == StopReason::signal) {
          std::fflush(stdout);
          fmt::print(stderr, "difftx: stopped by {} at step {} of {}{}\n",
                     s.signal == SIGINT ? "Ctrl-C" : "SIGTERM", s.steps_done,
                     loaded.config.train.steps,
                     s.checkpoint.empty() ? "; no step was done, so no checkpoint was written"
                                          : fmt::format("; checkpoint: {}", s.checkpoint.string()));
          if (!s.checkpoint.empty()) fmt::print(stderr, "resume with: {}\n", resume_command(*a));
          set_exit_status(exit_status_for_signal(s.signal));
          return;
        }
        print_result(*a, loaded.config, s);
      });
    }};

}  // namespace
}  // namespace difftx::cli
