// The study loop: folder, data, plan, train and evaluate each run, analysis and report (see
// runner.h).
#include "difftx/study/runner.h"

#include <fmt/format.h>

#include <chrono>
#include <memory>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/core/number_format.h"
#include "difftx/model/checkpoint.h"
#include "difftx/runtime/backend_factory.h"
#include "difftx/runtime/checkpoint_store.h"
#include "difftx/runtime/interrupt.h"
#include "difftx/runtime/model_loading.h"
#include "difftx/study/analysis.h"
#include "difftx/study/dataset.h"
#include "difftx/study/eval_tasks.h"
#include "difftx/study/measure.h"
#include "difftx/study/plan.h"
#include "difftx/study/report.h"
#include "difftx/study/run_result.h"
#include "difftx/study/synth_recipe.h"
#include "difftx/train/metrics_log.h"
#include "difftx/train/trainer.h"

namespace difftx::study {
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kStudyFile = "study.json";
constexpr const char* kStudySchema = "difftx-study";

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Claims `out` for this study, or checks that it already belongs to it (--resume).
void open_study_folder(const StudySpec& spec, const fs::path& out, const std::string& device,
                       bool resume) {
  const fs::path state = out / kStudyFile;
  std::error_code ec;
  if (fs::exists(state, ec)) {
    json j;
    try {
      j = json::parse(read_file_text(state));
    } catch (const json::parse_error& e) {
      fail("{}: not valid JSON ({}): the study folder is damaged; start again in a new --out",
           state.string(), e.what());
    }
    const std::string name = j.value("study", std::string("?"));
    if (!resume) {
      fail("'{}' already holds study \"{}\": continue it with --resume, or choose another --out",
           out.string(), name);
    }
    if (j.value("fingerprint", std::string()) != spec.fingerprint()) {
      fail(
          "--resume: '{}' holds study \"{}\" made from another spec (spec file {} then): resume "
          "with that spec unchanged, or run this one with another --out",
          out.string(), name, j.value("spec_file", std::string("?")));
    }
    if (j.value("device", std::string()) != device) {
      fail("--resume: the study in '{}' runs on {}, not {}: resume with --device {}", out.string(),
           j.value("device", std::string("?")), device, j.value("device", std::string("?")));
    }
    return;
  }
  if (resume) {
    fail("--resume: no study in '{}' (no {}): start it without --resume", out.string(), kStudyFile);
  }
  if (fs::exists(out, ec) && !fs::is_empty(out, ec)) {
    fail("'{}' is not empty and holds no study: choose a new or empty --out folder", out.string());
  }
  ensure_writable_directory(out);
  const json j = {{"schema", kStudySchema},
                  {"version", 1},
                  {"study", spec.name},
                  {"spec_file", spec.source_name},
                  {"fingerprint", spec.fingerprint()},
                  {"device", device},
                  {"spec", spec.source}};
  write_file_atomic(state, j.dump(2) + "\n");
}

// Runs the synth recipes whose data is not complete yet; returns every data set's description.
std::vector<DatasetInfo> make_data(const StudySpec& spec, const fs::path& out, bool quiet) {
  std::vector<DatasetInfo> infos;
  for (const DatasetSpec& d : spec.datasets) {
    const fs::path dir = dataset_dir(d, out);
    if (d.synth) {
      const fs::path marker = out / "data" / (d.slug + ".recipe.json");
      std::error_code ec;
      bool made = false;
      if (fs::exists(marker, ec) && fs::exists(dir / "meta.json", ec)) {
        try {
          made = json::parse(read_file_text(marker)) == *d.synth;
        } catch (const json::parse_error&) {
          made = false;
        }
      }
      if (made) {
        if (!quiet)
          fmt::print(stderr, "data set \"{}\": made earlier in {}\n", d.name, dir.string());
      } else {
        if (!quiet) {
          fmt::print(stderr, "data set \"{}\": difftx data synth {} into {}\n", d.name,
                     d.synth->at("kind").get<std::string>(), dir.string());
        }
        fs::remove_all(dir, ec);
        fs::remove(marker, ec);
        run_synth_recipe(*d.synth, dir, quiet ? ProgressMode::quiet : ProgressMode::automatic,
                         fmt::format("{}: datasets \"{}\" synth", spec.source_name, d.name));
        write_file_atomic(marker, d.synth->dump(2) + "\n");
      }
    }
    infos.push_back(read_dataset_info(dir, d.name));
  }
  return infos;
}

// Trains a run to its last step (resuming or restarting it as its folder says). False when a
// stop request ended it early (its signal in `signal`).
bool train_run(const PlannedRun& run, bool quiet, int& signal) {
  const CheckpointStore store(run.dir);
  const auto latest = store.latest();
  if (latest && latest->step >= run.config.train.steps) return true;
  TrainOptions options;
  options.quiet = quiet;
  options.resume = latest.has_value();
  options.overwrite = !latest && store.holds_run();  // stopped before its first checkpoint
  Trainer trainer(run.config, options);
  const TrainSummary summary = trainer.run();
  if (summary.stop_reason == StopReason::signal) {
    signal = summary.signal;
    return false;
  }
  return true;
}

// Evaluates a trained run from its final checkpoint and reads its learning curve.
RunResult evaluate_run(const StudySpec& spec, const PlannedRun& run, const DatasetInfo& data,
                       Backend& backend, bool quiet) {
  const auto t0 = Clock::now();
  const CheckpointStore store(run.dir);
  const auto latest = store.latest();
  if (!latest || latest->step != run.config.train.steps) {
    fail(
        "run {}: no checkpoint of step {} in '{}' after training: delete the run folder and "
        "resume the study",
        run.id, run.config.train.steps, run.dir.string());
  }
  const ModelCheckpoint ck = load_model_checkpoint(latest->dir);
  Model model(ck.config, backend, params_for_backend(ck.params, backend));

  RunResult r;
  r.id = run.id;
  r.parameters = run.parameters;
  r.steps = run.config.train.steps;
  r.config = run.config.to_json();
  const double tokens_per_step =
      double(run.config.optim.grad_accum) * run.config.data.batch_size * run.config.data.seq_len;
  r.tokens = tokens_per_step * r.steps;
  const EvaluationSpec& e = spec.evaluations;
  SplitMeasureOptions mo;
  mo.data = data.dir;
  mo.batch_size = e.eval_batch_size > 0 ? e.eval_batch_size : run.config.data.batch_size;
  for (const std::string& split : e.loss_splits) {
    mo.split = split;
    mo.seq_len = data.seq_len_for(split, run.config.data.seq_len);
    mo.max_batches = 0;
    r.metrics[split + "_loss"] = measure_loss(model, mo);
  }
  for (const std::string& split : e.accuracy_splits) {
    mo.split = split;
    mo.seq_len = data.seq_len_for(split, run.config.data.seq_len);
    mo.max_batches = e.accuracy_max_batches;
    r.metrics[split + "_accuracy"] = measure_accuracy(model, mo).accuracy;
  }
  r.final_lambdas = model.lambdas();
  if (wants_eval_tasks(e)) {
    EvalTaskResults tasks = run_eval_tasks(e, latest->dir, data, run.config.data.seq_len, backend,
                                           run.config.train.device,
                                           quiet ? ProgressMode::quiet : ProgressMode::automatic);
    r.metrics.insert(tasks.metrics.begin(), tasks.metrics.end());
    r.evaluations = std::move(tasks.details);
  }

  const RunMetrics m = read_metrics(store.metrics_file());
  for (const EvalRecord& ev : m.evals) {
    r.curve.push_back({ev.step, tokens_per_step * ev.step, ev.val_loss});
  }
  r.timing.train_seconds = m.train.empty() ? 0.0 : m.train.back().elapsed_s;
  r.timing.tokens_per_second = r.timing.train_seconds > 0 ? r.tokens / r.timing.train_seconds : 0;
  r.timing.eval_seconds = seconds_since(t0);
  return r;
}

std::string metrics_line(const RunResult& r) {
  std::string out;
  for (const auto& [key, value] : r.metrics) {
    out += fmt::format("{}{} {:.4f}", out.empty() ? "" : ", ", key, value);
  }
  return out;
}

}  // namespace

StudyOutcome run_study(const StudySpec& spec, const StudyOptions& options) {
  const auto t0 = Clock::now();
  const std::string device = options.device.empty() ? spec.device : options.device;
  if (device != "cpu" && device != "cuda") {
    fail("--device must be cpu or cuda, got \"{}\"", device);
  }
  DIFFTX_CHECK(!options.out.empty(), "study: no output folder given (--out)");
  const bool quiet = options.quiet;
  auto say = [&](const std::string& line) {
    if (!quiet) fmt::print(stderr, "{}\n", line);
  };

  // Everything that can be checked before the data exists is checked before anything is made.
  {
    std::vector<DatasetInfo> predicted;
    for (const DatasetSpec& d : spec.datasets) {
      predicted.push_back(d.synth
                              ? predict_synth_dataset(*d.synth, dataset_dir(d, options.out), d.name)
                              : read_dataset_info(d.path, d.name));
    }
    plan_runs(spec, predicted, options.out, device);
  }
  open_study_folder(spec, options.out, device, options.resume);
  const std::vector<DatasetInfo> data = make_data(spec, options.out, quiet);
  const std::vector<PlannedRun> runs = plan_runs(spec, data, options.out, device);
  say(
      fmt::format("study {}: {} runs ({} data set(s) x {} size(s) x {} seed(s) x {} arms) on {}; "
                  "expected wall time: {}",
                  spec.name, runs.size(), spec.datasets.size(), spec.sizes.size(),
                  spec.seeds.size(), spec.arms.size(), device, spec.expected_wall_time));

  std::unique_ptr<Backend> eval_backend;
  std::vector<PlannedRun> done;  // the runs measured so far, in plan order
  std::vector<RunResult> results;
  double measured_seconds = 0;
  int measured_here = 0;
  StudyOutcome outcome;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const PlannedRun& run = runs[i];
    const std::string tag = fmt::format("[{:>{}}/{}] {}", i + 1, std::to_string(runs.size()).size(),
                                        runs.size(), run.id);
    if (auto earlier = read_run_result(run.dir, run.config.to_json())) {
      say(fmt::format("{}: measured earlier ({})", tag, metrics_line(*earlier)));
      done.push_back(run);
      results.push_back(std::move(*earlier));
      continue;
    }
    if (const int sig = stop_requested()) {
      outcome.signal = sig;
      break;
    }
    say(fmt::format("{}: {} parameters, {} steps", tag, with_thousands(run.parameters),
                    with_thousands(std::int64_t(run.config.train.steps))));
    const auto t_run = Clock::now();
    int sig = 0;
    if (!train_run(run, quiet, sig)) {
      outcome.signal = sig;
      break;
    }
    if (!eval_backend) eval_backend = make_backend(device);
    RunResult r = evaluate_run(spec, run, data[run.dataset], *eval_backend, quiet);
    write_run_result(run.dir, r);
    measured_seconds += seconds_since(t_run);
    ++measured_here;
    const std::size_t left = runs.size() - i - 1;
    const double eta = measured_seconds / measured_here * double(left);
    say(fmt::format("{}: {} ({:.1f} s); {} run(s) left, about {}", tag, metrics_line(r),
                    seconds_since(t_run), left, format_duration(eta)));
    done.push_back(run);
    results.push_back(std::move(r));
  }
  outcome.wall_seconds = seconds_since(t0);
  outcome.completed = results.size() == runs.size();
  if (!results.empty()) {
    // A stopped study still reports the runs it has, marked partial.
    StudyContext context;
    context.device = device;
    context.wall_seconds = outcome.wall_seconds;
    context.planned_runs = runs.size();
    const json analysed = analyse_study(spec, done, results, data, context);
    outcome.results = options.out / "results.json";
    write_file_atomic(outcome.results, analysed.dump(2) + "\n");
    outcome.report = options.out / "report.html";
    write_file_atomic(outcome.report, render_study_report(analysed));
  }
  if (!outcome.completed) {
    say(
        fmt::format("study {} stopped after {} of {} runs{}; continue it with `difftx study "
                    "--spec {} --out {} --resume`",
                    spec.name, results.size(), runs.size(),
                    results.empty() ? "" : " (partial results.json and report.html written)",
                    spec.source_name, options.out.string()));
  }
  return outcome;
}

}  // namespace difftx::study
