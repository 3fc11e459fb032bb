// `difftx compare`: train a DIFF model and its parameter-matched softmax baseline on the same
// data and tokens, then write a self-contained HTML report (report.html) in the output folder.
#include <fmt/core.h>

#include <cmath>

#include "cli_options.h"
#include "command_registry.h"
#include "difftx/core/number_format.h"
#include "difftx/model/params.h"
#include "difftx/report/html_report.h"
#include "difftx/runtime/interrupt.h"
#include "difftx/train/config_overrides.h"
#include "difftx/train/trainer.h"
#include "run_report.h"

namespace difftx::cli {
namespace {

struct CompareArgs {
  std::string config, out;
  ConfigOverrides overrides;
  bool overwrite = false;
  bool quiet = false;
};

// Evaluations a comparison wants at least, so that validation curves are curves.
constexpr int kMinEvaluations = 5;

std::string schedule_text(const ScheduleConfig& s) {
  std::string text = fmt::format("lr {:g}", s.lr);
  if (s.warmup_steps > 0) text += fmt::format(" after {} warmup steps", s.warmup_steps);
  if (s.decay != ScheduleConfig::Decay::constant) {
    text +=
        fmt::format(", {} decay to {:g} at step {}", decay_name(s.decay), s.min_lr, s.total_steps);
  } else {
    text += ", constant";
  }
  return text;
}

const CommandRegistration reg{
    50, [](CLI::App& app) {
      auto a = std::make_shared<CompareArgs>();
      auto* cmd = app.add_subcommand(
          "compare",
          "Train a DIFF model and its parameter-matched softmax baseline; write report.html");
      cmd->add_option("--config", a->config, "Run config of the DIFF model")->required();
      cmd->add_option("--out", a->out, "Output folder (default: <output.dir>-compare)");
      cmd->add_option("--device", a->overrides.device, "Override train.device: cpu or cuda");
      cmd->add_option("--data", a->overrides.data, "Override data.path for both runs")
          ->type_name("PATH");
      cmd->add_option(
             "--steps", a->overrides.steps,
             "Override train.steps for both runs (short runs evaluate often enough to draw curves)")
          ->check(integer_in<int>(1));
      cmd->add_option("--set", a->overrides.set,
                      "Override a config field of both runs: section.field=value (repeatable; see "
                      "`train --help`)")
          ->type_name("SECTION.FIELD=VALUE");
      cmd->add_flag("--overwrite", a->overwrite, "Replace earlier runs in the output folder");
      cmd->add_flag("--quiet", a->quiet, "No progress output");
      cmd->callback([a] {
        LoadedRunConfig loaded = load_run_config(a->config, a->overrides);
        RunConfig diff = loaded.config;
        if (diff.model.attention == AttentionKind::softmax) {
          fail("{}: compare needs a diff_v1 or diff_v2 model; the baseline is derived from it",
               a->config);
        }
        // A short run still gets validation curves: at least kMinEvaluations evaluations.
        const int every = diff.train.eval_every;
        if (every > 0 && diff.train.steps / every < kMinEvaluations) {
          const int shorter = std::max(1, diff.train.steps / (2 * kMinEvaluations));
          ConfigOverrides o = a->overrides;
          o.set.insert(o.set.begin(), fmt::format("train.eval_every={}", shorter));
          loaded = load_run_config(a->config, o);
          diff = loaded.config;
          loaded.notes.push_back(
              fmt::format("{} steps with train.eval_every {} would evaluate only {} time(s); "
                          "evaluating every {} steps instead",
                          diff.train.steps, every, std::max(1, diff.train.steps / every),
                          diff.train.eval_every));
        }
        for (const auto& note : loaded.notes) fmt::print(stderr, "note: {}\n", note);
        const std::filesystem::path out =
            a->out.empty() ? diff.output.dir.string() + "-compare" : a->out;
        nlohmann::json j = diff.source;
        j["output"]["dir"] = (out / "diff").string();
        diff = RunConfig::from_json(j, a->config);
        nlohmann::json jb = j;
        jb["model"] = matched_baseline(diff.model).to_json();
        jb["output"]["dir"] = (out / "baseline").string();
        RunConfig base = RunConfig::from_json(jb, a->config + " (matched baseline)");

        TrainOptions options;
        options.quiet = a->quiet;
        options.overwrite = a->overwrite;
        InterruptScope interrupts;
        std::vector<TrainSummary> summaries;
        for (const RunConfig* run : {&diff, &base}) {
          fmt::print(
              stderr, "== {} ({} parameters)\n",
              run == &diff ? attention_kind_name(diff.model.attention) : "matched softmax baseline",
              with_thousands(parameter_count(run->model)));
          Trainer trainer(*run, options);
          summaries.push_back(trainer.run());
          if (summaries.back().stop_reason == StopReason::signal) {
            fmt::print(
                stderr,
                "difftx: compare stopped by a signal; no report written (the runs are under {})\n",
                out.string());
            set_exit_status(exit_status_for_signal(summaries.back().signal));
            return;
          }
        }
        report::CompareReport rep;
        const std::string diff_label =
            diff.model.attention == AttentionKind::diff_v1 ? "DIFF V1" : "DIFF V2";
        rep.title = fmt::format("difftx compare: {} vs softmax baseline", diff_label);
        rep.subtitle = fmt::format(
            "config {} | data {} | {} steps x {} x {} x {} tokens | {} | evaluation every {} steps "
            "| device {}\n"
            "generated {}",
            a->config, diff.data.path.string(), with_thousands(std::int64_t(diff.train.steps)),
            diff.optim.grad_accum, diff.data.batch_size, diff.data.seq_len,
            schedule_text(diff.schedule), diff.train.eval_every, diff.train.device, utc_date());
        rep.runs.push_back(run_series(diff.output.dir, diff_label));
        rep.runs.push_back(run_series(base.output.dir, "Transformer"));
        report::write_compare_report(out / "report.html", rep);
        for (std::size_t i = 0; i < rep.runs.size(); ++i) {
          const TrainSummary& s = summaries[i];
          fmt::print("{}: validation loss {:.4f} (ppl {:.2f}), {} tok/s\n", rep.runs[i].label,
                     s.final_val_loss.value_or(NAN), std::exp(s.final_val_loss.value_or(NAN)),
                     with_thousands(s.tokens_per_second, 0));
        }
        fmt::print("report: {}\n", (out / "report.html").string());
      });
    }};

}  // namespace
}  // namespace difftx::cli
