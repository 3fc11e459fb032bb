// `difftx study`: DIFF against its baseline over many seeds, from one spec file
// (configs/studies/*.json, docs/study.md): data, every run, the statistics and report.html; the
// paired differences and ratios are printed at the end (a '*' marks an interval without 0).
#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "cli_options.h"
#include "command_registry.h"
#include "difftx/core/atomic_file.h"
#include "difftx/core/number_format.h"
#include "difftx/runtime/interrupt.h"
#include "difftx/study/plan.h"
#include "difftx/study/runner.h"
#include "difftx/study/synth_recipe.h"

namespace difftx::cli {
namespace {

struct StudyArgs {
  std::string spec, out, device;
  bool resume = false;
  bool quiet = false;
  bool plan = false;
};

// `--plan`: the runs the spec makes, checked, without training anything.
void print_plan(const study::StudySpec& spec, const std::filesystem::path& out,
                const std::string& device) {
  std::vector<study::DatasetInfo> data;
  for (const study::DatasetSpec& d : spec.datasets) {
    data.push_back(d.synth
                       ? study::predict_synth_dataset(*d.synth, study::dataset_dir(d, out), d.name)
                       : study::read_dataset_info(d.path, d.name));
  }
  const auto runs = study::plan_runs(spec, data, out, device);
  double tokens = 0;
  for (const auto& r : runs) {
    const auto& c = r.config;
    const double t =
        double(c.train.steps) * c.optim.grad_accum * c.data.batch_size * c.data.seq_len;
    tokens += t;
    fmt::print("{}  {} {} parameters, {} steps x {} x {} tokens\n", r.id,
               attention_kind_name(c.model.attention), with_thousands(r.parameters),
               with_thousands(std::int64_t(c.train.steps)), c.data.batch_size, c.data.seq_len);
  }
  fmt::print("study {}: {} runs, {} training tokens in all, on {}; expected wall time: {}\n",
             spec.name, runs.size(), with_thousands(tokens, 0), device, spec.expected_wall_time);
}

// The study's findings on stdout: each paired difference with its interval, and the scaling
// fit's ratios (the same numbers as report.html).
void print_findings(const std::filesystem::path& results_file) {
  const nlohmann::json res = nlohmann::json::parse(read_file_text(results_file));
  auto num = [](const nlohmann::json& j, const char* key) {
    return j.contains(key) && j.at(key).is_number() ? j.at(key).get<double>() : NAN;
  };
  for (const auto& p : res.at("paired")) {
    const std::string metric = p.at("metric").get<std::string>();
    const bool small = metric.rfind("quant_delta", 0) == 0 || metric.rfind("quant_kl", 0) == 0;
    const int dec = metric.find("accuracy") != std::string::npos ? 3
                    : metric.find("top1") != std::string::npos   ? 2
                    : small                                      ? 6
                                                                 : 4;
    fmt::print("{} - {} | {} | {} | {}: {:+.{}f} [{:+.{}f}, {:+.{}f}] p={:.3f} ({} seeds){}\n",
               p.at("arm").get<std::string>(), p.at("baseline").get<std::string>(),
               p.at("dataset").get<std::string>(), p.at("size").get<std::string>(), metric,
               num(p, "mean"), dec, num(p, "ci_low"), dec, num(p, "ci_high"), dec, num(p, "p"),
               p.at("n").get<int>(), p.at("excludes_zero").get<bool>() ? " *" : "");
  }
  if (!res.at("scaling").is_array()) return;
  for (const auto& fit : res.at("scaling")) {
    if (fit.contains("error")) {
      fmt::print("scaling fit {}: none ({})\n", fit.at("dataset").get<std::string>(),
                 fit.at("error").get<std::string>());
      continue;
    }
    for (const auto& r : fit.at("ratios")) {
      fmt::print(
          "scaling fit {}: {} needs {:.3f} [{:.3f}, {:.3f}] of {}'s parameters and {:.3f} [{:.3f}, "
          "{:.3f}] of its tokens at equal loss (alpha {:.4f}, beta {:.4f}){}\n",
          fit.at("dataset").get<std::string>(), r.at("arm").get<std::string>(),
          num(r, "parameter_ratio"), num(r, "parameter_ci_low"), num(r, "parameter_ci_high"),
          r.at("against").get<std::string>(), num(r, "token_ratio"), num(r, "token_ci_low"),
          num(r, "token_ci_high"), num(fit, "alpha"), num(fit, "beta"),
          r.at("note").get<std::string>().empty() ? "" : "; " + r.at("note").get<std::string>());
    }
  }
}

const CommandRegistration reg{
    60, [](CLI::App& app) {
      auto a = std::make_shared<StudyArgs>();
      auto* cmd = app.add_subcommand(
          "study",
          "Train and evaluate every arm, size and seed of a study spec; paired statistics, "
          "results.json and report.html (docs/study.md)");
      cmd->add_option("--spec", a->spec, "Study spec (configs/studies/*.json)")
          ->required()
          ->type_name("FILE");
      cmd->add_option("--out", a->out, "Study folder (default: runs/studies/<study name>)")
          ->type_name("DIR");
      cmd->add_option("--device", a->device, "cpu or cuda (default: the spec's \"device\")")
          ->check(CLI::IsMember({"cpu", "cuda"}));
      cmd->add_flag("--resume", a->resume,
                    "Continue the study in --out: finished runs are kept, a stopped run resumes "
                    "from its newest checkpoint");
      cmd->add_flag("--plan", a->plan, "Check the spec and list its runs without training");
      cmd->add_flag("--quiet", a->quiet, "No progress output");
      cmd->callback([a] {
        const study::StudySpec spec = study::load_study_spec(a->spec);
        const std::filesystem::path out = a->out.empty()
                                              ? std::filesystem::path("runs/studies") / spec.name
                                              : std::filesystem::path(a->out);
        const std::string device = a->device.empty() ? spec.device : a->device;
        if (a->plan) {
          print_plan(spec, out, device);
          return;
        }
        study::StudyOptions options;
        options.out = out;
        options.device = device;
        options.resume = a->resume;
        options.quiet = a->quiet;
        InterruptScope interrupts;
        const study::StudyOutcome outcome = study::run_study(spec, options);
        if (!outcome.results.empty()) print_findings(outcome.results);
        if (!outcome.completed) {
          if (!outcome.results.empty()) fmt::print("(partial: the study was stopped)\n");
          set_exit_status(exit_status_for_signal(outcome.signal));
          return;
        }
        fmt::print("study {}: {} s; results {}, report {}\n", spec.name,
                   with_thousands(outcome.wall_seconds, 1), outcome.results.string(),
                   outcome.report.string());
      });
    }};

}  // namespace
}  // namespace difftx::cli
