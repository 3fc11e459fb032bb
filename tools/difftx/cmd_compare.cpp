// `difftx compare`: train a DIFF model and its parameter-matched softmax baseline on the same
// data and tokens, then write a self-contained HTML report (report.html) in the output folder.
#include <fmt/core.h>

#include <chrono>
#include <ctime>

#include "command_registry.h"
#include "difftx/model/params.h"
#include "difftx/report/html_report.h"
#include "difftx/train/trainer.h"

namespace difftx::cli {
namespace {

report::RunSeries series(const std::string& label, const RunConfig& cfg, const TrainSummary& s) {
  report::RunSeries r;
  r.label = label;
  r.attention = attention_kind_name(cfg.model.attention);
  r.params = parameter_count(cfg.model);
  for (auto [step, loss] : s.train_losses) r.train_loss.emplace_back(step, loss);
  for (const auto& e : s.evals) r.val_loss.emplace_back(e.step, e.val_loss);
  if (!s.evals.empty() && !s.evals.front().lambdas.empty()) {
    r.lambda_per_layer.resize(s.evals.front().lambdas.size());
    for (const auto& e : s.evals) {
      for (std::size_t l = 0; l < e.lambdas.size() && l < r.lambda_per_layer.size(); ++l) {
        r.lambda_per_layer[l].emplace_back(e.step, e.lambdas[l]);
      }
    }
  }
  r.tokens_per_second = s.tokens_per_second;
  r.final_val_loss = s.final_val_loss;
  return r;
}

struct CompareArgs {
  std::string config, out, device;
  int steps = 0;
  bool quiet = false;
};

const CommandRegistration reg{50, [](CLI::App& app) {
  auto a = std::make_shared<CompareArgs>();
  auto* cmd = app.add_subcommand(
      "compare", "Train a DIFF model and its parameter-matched softmax baseline; write report.html");
  cmd->add_option("--config", a->config, "Run config of the DIFF model")->required();
  cmd->add_option("--out", a->out, "Output folder (default: <output.dir>-compare)");
  cmd->add_option("--device", a->device, "Override train.device: cpu or cuda");
  cmd->add_option("--steps", a->steps, "Override train.steps for both runs");
  cmd->add_flag("--quiet", a->quiet, "No progress output");
  cmd->callback([a] {
    RunConfig diff = load_run_config(a->config);
    if (diff.model.attention == AttentionKind::softmax) {
      fail("{}: compare needs a diff_v1 or diff_v2 model; the baseline is derived from it", a->config);
    }
    nlohmann::json j = diff.source;
    if (!a->device.empty()) j["train"]["device"] = a->device;
    if (a->steps > 0) {
      j["train"]["steps"] = a->steps;
      j["schedule"]["total_steps"] = a->steps;
      if (j["schedule"]["warmup_steps"].get<int>() > a->steps) j["schedule"]["warmup_steps"] = a->steps;
    }
    const std::filesystem::path out = a->out.empty() ? diff.output.dir.string() + "-compare" : a->out;
    j["output"]["dir"] = (out / "diff").string();
    diff = RunConfig::from_json(j, a->config);
    nlohmann::json jb = j;
    jb["model"] = matched_baseline(diff.model).to_json();
    jb["output"]["dir"] = (out / "baseline").string();
    RunConfig base = RunConfig::from_json(jb, a->config + " (matched baseline)");
    TrainOptions options;
    options.quiet = a->quiet;
    fmt::print(stderr, "== {} ({} parameters)\n", attention_kind_name(diff.model.attention), parameter_count(diff.model));
    TrainSummary sd = train_model(diff, options);
    fmt::print(stderr, "== matched softmax baseline ({} parameters)\n", parameter_count(base.model));
    TrainSummary sb = train_model(base, options);
    report::CompareReport rep;
    rep.title = fmt::format("difftx compare: {} vs softmax baseline", attention_kind_name(diff.model.attention));
    std::time_t now = std::time(nullptr);
    char date[64];
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    rep.subtitle = fmt::format(
        "config {} | data {} | {} steps x {} x {} x {} tokens | lr {} | device {}\ngenerated {}", a->config,
        diff.data.path.string(), diff.train.steps, diff.optim.grad_accum, diff.data.batch_size,
        diff.data.seq_len, diff.schedule.lr, diff.train.device, date);
    std::string diff_label = diff.model.attention == AttentionKind::diff_v1 ? "DIFF V1" : "DIFF V2";
    rep.runs.push_back(series(diff_label, diff, sd));
    rep.runs.push_back(series("Transformer", base, sb));
    report::write_compare_report(out / "report.html", rep);
    fmt::print("{}: validation loss {:.4f} (ppl {:.2f}), {:.0f} tok/s\n", diff_label, sd.final_val_loss,
               std::exp(sd.final_val_loss), sd.tokens_per_second);
    fmt::print("Transformer: validation loss {:.4f} (ppl {:.2f}), {:.0f} tok/s\n", sb.final_val_loss,
               std::exp(sb.final_val_loss), sb.tokens_per_second);
    fmt::print("report: {}\n", (out / "report.html").string());
  });
}};

}  // namespace
}  // namespace difftx::cli
