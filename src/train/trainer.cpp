// The Trainer (see trainer.h): setup and the run-folder rules, resume and --init-from,
// steps, evaluation, checkpoints through the CheckpointStore, and the loop with its log.
#include "difftx/train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/core/number_format.h"
#include "difftx/core/progress.h"
#include "difftx/core/version.h"
#include "difftx/data/loader.h"
#include "difftx/model/checkpoint.h"
#include "difftx/runtime/backend_factory.h"
#include "difftx/runtime/checkpoint_store.h"
#include "difftx/runtime/device_info.h"
#include "difftx/runtime/interrupt.h"
#include "difftx/runtime/model_loading.h"
#include "difftx/train/evaluation.h"
#include "difftx/train/flops.h"
#include "difftx/train/metrics_log.h"
#include "difftx/train/optimizer.h"
#include "difftx/train/train_state.h"

namespace difftx {
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kStateFile = "train_state.safetensors";

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::completed:
      return "completed";
    case StopReason::stop_after:
      return "stop_after";
    case StopReason::signal:
      return "signal";
  }
  return "?";
}

// The fields in which two model configs differ, for error messages.
std::string differing_fields(const ModelConfig& a, const ModelConfig& b) {
  const json ja = a.to_json(), jb = b.to_json();
  std::string out;
  for (auto it = ja.begin(); it != ja.end(); ++it) {
    if (!jb.contains(it.key()) || jb.at(it.key()) != it.value()) {
      out += fmt::format("{}{} ({} vs {})", out.empty() ? "" : ", ", it.key(), it.value().dump(),
                         jb.contains(it.key()) ? jb.at(it.key()).dump() : "none");
    }
  }
  return out;
}

// Checks the data set against the model before anything is written; the hints agree with
// each other (following one never leads to the other).
void check_data(const RunConfig& cfg, const fs::path& tokenizer_path) {
  std::error_code ec;
  if (!fs::exists(tokenizer_path, ec)) {
    fail(
        "no tokenizer at '{}': prepare the data first (`difftx data prepare --vocab-size {} --out "
        "{}`)",
        tokenizer_path.string(), cfg.model.vocab_size, cfg.data.path.string());
  }
}

void check_vocab(const RunConfig& cfg, std::uint32_t data_vocab) {
  if (data_vocab == std::uint32_t(cfg.model.vocab_size)) return;
  const std::string other = fmt::format("{}-{}", cfg.data.path.string(), cfg.model.vocab_size);
  fail(
      "the model's vocab_size ({}) differs from the data's ({}) in '{}': prepare data with the "
      "model's vocabulary (`difftx data prepare --vocab-size {} --out {}`) and train on it (--data "
      "{}), or give the model the data's (--set model.vocab_size={})",
      cfg.model.vocab_size, data_vocab, cfg.data.path.string(), cfg.model.vocab_size, other, other,
      data_vocab);
}

}  // namespace

struct Trainer::State {
  RunConfig cfg;
  TrainOptions opt;
  CheckpointStore store;
  fs::path tokenizer_path;
  std::unique_ptr<data::TrainLoader> loader;
  std::unique_ptr<Evaluator> evaluator;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Model> model;
  std::unique_ptr<AdamW> optimizer;
  std::optional<MetricsLog> metrics;
  GradientHook hook;
  TrainStateMeta meta;
  data::Batch batch;

  int step = 0;
  int start_step = 0;
  fs::path resumed_from, init_from;
  double unigram = 0;
  double tokens_per_step = 0;
  FlopCount flops;
  DeviceInfo device;

  std::optional<Clock::time_point> t0;  // this process's first step
  double train_seconds = 0;             // this process's step time
  int steps_here = 0;                   // steps completed by this process
  double last_loss = 0;
  fs::path last_checkpoint;
  int last_checkpoint_step = -1;
  int last_eval_step = -1;
  std::vector<EvalPoint> evals;

  explicit State(const RunConfig& c, TrainOptions o)
      : cfg(c), opt(std::move(o)), store(c.output.dir) {}

  void setup();
  void load_weights();
  void open_run_folder();
};

void Trainer::State::setup() {
  if (opt.resume && opt.overwrite) {
    fail(
        "--resume and --overwrite contradict each other: --resume continues the run in '{}', "
        "--overwrite deletes it",
        cfg.output.dir.string());
  }
  if (opt.resume && !opt.init_from.empty()) {
    fail(
        "--resume and --init-from contradict each other: --resume continues a run with its "
        "optimizer state, --init-from starts a new run from a checkpoint's weights");
  }
  if (opt.stop_after && *opt.stop_after < 1)
    fail("--stop-after must be at least 1, got {}", *opt.stop_after);

  // Data first: nothing is written before the inputs are known to be usable.
  tokenizer_path = cfg.data.path / "tokenizer.model";
  check_data(cfg, tokenizer_path);
  data::LoaderOptions lo;
  lo.path = cfg.data.path;
  lo.seq_len = cfg.data.seq_len;
  lo.batch_size = cfg.data.batch_size;
  lo.seed = cfg.data.seed;
  lo.split = "train";
  loader = std::make_unique<data::TrainLoader>(lo);
  check_vocab(cfg, loader->shards().vocab_size());
  data::LoaderOptions vo = lo;
  vo.split = "val";
  evaluator = std::make_unique<Evaluator>(vo, cfg.train.eval_batches);

  // The run folder's state decides where the run starts.
  if (opt.resume) {
    auto latest = store.latest();
    if (!latest) {
      if (store.holds_run()) {
        fail(
            "--resume: the run in '{}' stopped before its first checkpoint, so there is nothing "
            "to resume; start it again with --overwrite",
            cfg.output.dir.string());
      }
      fail("--resume: no run in '{}' (no checkpoint under {}); start without --resume",
           cfg.output.dir.string(), store.checkpoints_dir().string());
    }
    resumed_from = latest->dir;
  } else if (store.holds_run() && !opt.overwrite) {
    auto latest = store.latest();
    fail(
        "'{}' already holds a run ({}): a run folder belongs to one run. Continue it with "
        "--resume, start it again with --overwrite (deletes its checkpoints and metrics), or "
        "choose another --out",
        cfg.output.dir.string(),
        latest ? fmt::format("checkpoints up to step {}", latest->step)
               : "metrics.jsonl, no checkpoint");
  }
  if (!opt.init_from.empty()) init_from = resolve_checkpoint(opt.init_from, "--init-from");

  backend = make_backend(cfg.train.device);
  device = device_info(*backend);
  load_weights();
  optimizer = std::make_unique<AdamW>(*model, cfg.optim);
  meta.init_seed = cfg.train.seed;
  if (!resumed_from.empty()) {
    meta = load_train_state(resumed_from / kStateFile, *optimizer);
    loader->restore(data::LoaderState::from_json(meta.loader));
    start_step = step = meta.step;
    if (step >= cfg.train.steps) {
      fail(
          "the run in '{}' is already complete (step {} of train.steps {}): nothing to resume; "
          "train further with --resume --steps N (N > {})",
          cfg.output.dir.string(), step, cfg.train.steps, step);
    }
    if (opt.stop_after && *opt.stop_after <= step) {
      fail("--stop-after {}: the run in '{}' is already at step {}; give a larger value",
           *opt.stop_after, cfg.output.dir.string(), step);
    }
  }
  unigram = unigram_entropy(loader->shards());
  tokens_per_step = double(cfg.optim.grad_accum) * cfg.data.batch_size * cfg.data.seq_len;
  flops = training_flops_per_token(cfg.model, cfg.data.seq_len);
  open_run_folder();
}

void Trainer::State::load_weights() {
  ParamSet params;
  if (!resumed_from.empty() || !init_from.empty()) {
    const fs::path from = resumed_from.empty() ? init_from : resumed_from;
    const char* option = resumed_from.empty() ? "--init-from" : "--resume";
    ModelCheckpoint ck = load_model_checkpoint(from);
    if (ck.config.to_json() != cfg.model.to_json()) {
      fail(
          "{}: checkpoint '{}' is of another architecture than the run config's model (differs in "
          "{}): make the config's \"model\" section equal to the checkpoint's config.json "
          "\"model\"",
          option, from.string(), differing_fields(ck.config, cfg.model));
    }
    if (!init_from.empty() && !resumed_from.empty()) fail("internal: resume and init-from");
    if (!init_from.empty() && !ck.tokenizer.empty() &&
        read_file_bytes(ck.tokenizer) != read_file_bytes(tokenizer_path)) {
      fail(
          "--init-from: the data in '{}' was tokenized with another tokenizer than the "
          "checkpoint's '{}': prepare the data with the checkpoint's tokenizer (`difftx data "
          "prepare --tokenizer {} ...`)",
          cfg.data.path.string(), ck.tokenizer.string(), ck.tokenizer.string());
    }
    if (!resumed_from.empty() && !fs::exists(from / kStateFile)) {
      fail(
          "--resume: checkpoint '{}' has no {} (it holds weights only); use --init-from to start a "
          "new run from its weights",
          from.string(), kStateFile);
    }
    params = params_for_backend(ck.params, *backend);
  } else {
    params =
        ParamSet::initialised(cfg.model, cfg.train.seed, backend->param_dtype(), backend->device());
  }
  model = std::make_unique<Model>(cfg.model, *backend, std::move(params));
}

void Trainer::State::open_run_folder() {
  if (opt.overwrite) store.clear();
  store.prepare();
  json common = {
      {"difftx_version", difftx_version()}, {"backend", backend->name()}, {"device", device.name}};
  if (resumed_from.empty()) {
    metrics.emplace(MetricsLog::start(store.metrics_file()));
    json run = {{"type", "run"},
                {"step", 0},
                {"parameters", model->params().numel()},
                {"unigram_entropy", unigram},
                {"tokens_per_step", tokens_per_step},
                {"flops_per_token", flops.per_token},
                {"peak_flops", device.peak_flops ? json(*device.peak_flops) : json(nullptr)},
                {"init_from", init_from.empty() ? json(nullptr) : json(init_from.string())},
                {"config", cfg.source}};
    run.update(common);
    metrics->write(run);
    const auto lambdas = model->lambdas();
    if (!lambdas.empty()) metrics->write({{"type", "lambda"}, {"step", 0}, {"lambda", lambdas}});
  } else {
    metrics.emplace(MetricsLog::resume(store.metrics_file(), step));
    json resume = {{"type", "resume"},
                   {"step", step},
                   {"from", resumed_from.string()},
                   {"config", cfg.source}};
    resume.update(common);
    metrics->write(resume);
    last_checkpoint = resumed_from;
    last_checkpoint_step = step;
  }
}

Trainer::Trainer(const RunConfig& config, TrainOptions options)
    : s_(std::make_unique<State>(config, std::move(options))) {
  s_->setup();
}

Trainer::~Trainer() = default;

void Trainer::set_gradient_hook(GradientHook hook) {
  s_->hook = std::move(hook);
}
int Trainer::step_index() const {
  return s_->step;
}
int Trainer::start_step() const {
  return s_->start_step;
}
Model& Trainer::model() {
  return *s_->model;
}
const RunConfig& Trainer::config() const {
  return s_->cfg;
}

StepResult Trainer::step() {
  State& s = *s_;
  const auto ts = Clock::now();
  if (!s.t0) s.t0 = ts;
  const RunConfig& cfg = s.cfg;
  StepResult r;
  r.lr = learning_rate(cfg.schedule, s.step);
  Model& model = *s.model;
  model.zero_grads();
  double loss = 0;
  for (int micro = 0; micro < cfg.optim.grad_accum; ++micro) {
    s.loader->next_batch(s.batch);
    const data::Batch& b = s.batch;
    // Task data marks its targets: the loss counts only those (labels() is -1 elsewhere).
    loss += model.forward_backward(token_tensor(b.inputs(), b.batch_size, b.seq_len),   // (B, T)
                                   token_tensor(b.labels(), b.batch_size, b.seq_len),   // (B, T)
                                   1.0 / cfg.optim.grad_accum) /
            cfg.optim.grad_accum;
  }
  if (s.hook) s.hook(model, loss);
  const double norm = std::isfinite(loss) ? s.optimizer->step(r.lr) : loss;
  r.loss = loss;
  r.grad_norm = norm;
  if (!std::isfinite(loss) || !std::isfinite(norm)) {
    const std::string what = !std::isfinite(loss) ? fmt::format("loss is {}", loss)
                                                  : fmt::format("gradient norm is {}", norm);
    if (cfg.train.nan_policy == NanPolicy::stop) {
      fail(
          "{} at step {}; stopped without updating the weights (last checkpoint: {}). Lower "
          "schedule.lr or set train.nan_policy to \"skip\"",
          what, s.step + 1, s.last_checkpoint.empty() ? "none" : s.last_checkpoint.string());
    }
    if (++s.meta.skipped_in_a_row > cfg.train.max_skipped_steps) {
      fail("{} at step {}: {} non-finite steps in a row (train.max_skipped_steps = {}); stopping",
           what, s.step + 1, s.meta.skipped_in_a_row, cfg.train.max_skipped_steps);
    }
    ++s.step;
    s.metrics->write({{"type", "skip"}, {"step", s.step}, {"reason", what}});
    r.step = s.step;
    r.skipped = true;
    return r;
  }
  s.meta.skipped_in_a_row = 0;
  s.backend->synchronize();
  const auto te = Clock::now();
  r.seconds = std::chrono::duration<double>(te - ts).count();
  s.train_seconds += r.seconds;
  ++s.steps_here;
  r.step = ++s.step;
  s.last_loss = loss;
  const double tokens_per_s = s.tokens_per_step / r.seconds;
  json record = {{"type", "train"},
                 {"step", s.step},
                 {"loss", loss},
                 {"lr", r.lr},
                 {"grad_norm", norm},
                 {"tokens_per_s", tokens_per_s},
                 {"tokens", s.tokens_per_step * s.step},
                 {"elapsed_s",
                  s.metrics->elapsed_before() + std::chrono::duration<double>(te - *s.t0).count()}};
  if (s.device.peak_flops) record["mfu"] = tokens_per_s * s.flops.per_token / *s.device.peak_flops;
  s.metrics->write(record);
  return r;
}

EvalPoint Trainer::evaluate() {
  State& s = *s_;
  EvalPoint p{s.step, s.evaluator->mean_loss(*s.model), s.model->lambdas()};
  s.metrics->write({{"type", "eval"},
                    {"step", p.step},
                    {"val_loss", p.val_loss},
                    {"val_ppl", std::exp(p.val_loss)},
                    {"lambda", p.lambdas}});
  s.evals.push_back(p);
  s.last_eval_step = s.step;
  return p;
}

fs::path Trainer::checkpoint() {
  State& s = *s_;
  const int step = s.step;
  const fs::path dir = s.store.save(step, [&](const fs::path& partial) {
    save_model_checkpoint(partial, s.cfg.source, s.cfg.model, s.model->params(), s.tokenizer_path,
                          step);
    s.meta.step = step;
    s.meta.loader = s.loader->state().to_json();
    save_train_state(partial / kStateFile, *s.optimizer, s.meta);
  });
  s.store.prune(s.cfg.output.keep_last, step);
  s.last_checkpoint = dir;
  s.last_checkpoint_step = step;
  return dir;
}

TrainSummary Trainer::run() {
  State& s = *s_;
  const RunConfig& cfg = s.cfg;
  const bool tty = !s.opt.quiet && ::isatty(fileno(stderr));
  auto say = [&](const std::string& line) {
    if (s.opt.quiet) return;
    fmt::print(stderr, "{}{}\n", tty ? "\r\033[K" : "", line);
  };
  std::string from;
  if (!s.resumed_from.empty()) from = fmt::format("; resumed from {}", s.resumed_from.string());
  if (!s.init_from.empty()) from = fmt::format("; weights from {}", s.init_from.string());
  say(
      fmt::format("difftx train: {} {} parameters on {} ({}), {} steps of {} x {} x {} tokens; "
                  "unigram entropy of the data {:.3f} nats{}",
                  attention_kind_name(cfg.model.attention),
                  with_thousands(s.model->params().numel()), cfg.train.device,
                  s.device.name == "cpu" ? std::string(s.backend->name())
                                         : s.device.name + ", " + s.backend->name(),
                  with_thousands(std::int64_t(cfg.train.steps)), cfg.optim.grad_accum,
                  cfg.data.batch_size, cfg.data.seq_len, s.unigram, from));
  auto say_eval = [&](const EvalPoint& p) {
    std::string lam;
    for (double l : p.lambdas) lam += fmt::format(" {:.3f}", l);
    say(fmt::format("step {:>6} | val loss {:.4f} | ppl {:.2f}{}", p.step, p.val_loss,
                    std::exp(p.val_loss), lam.empty() ? "" : " | lambda" + lam));
  };

  TrainSummary summary;
  summary.start_step = s.start_step;
  summary.parameters = s.model->params().numel();
  summary.unigram_entropy = s.unigram;
  const int end_step =
      s.opt.stop_after ? std::min(*s.opt.stop_after, cfg.train.steps) : cfg.train.steps;
  summary.stop_reason = end_step < cfg.train.steps ? StopReason::stop_after : StopReason::completed;

  ProgressOptions po;
  po.unit = "step";
  po.mode = s.opt.quiet ? ProgressMode::quiet : ProgressMode::automatic;
  po.start_done = s.start_step;
  Progress progress("train", cfg.train.steps, po);
  while (s.step < end_step) {
    if (s.opt.stop_on_signal && stop_requested() != 0) {
      summary.stop_reason = StopReason::signal;
      summary.signal = stop_requested();
      break;
    }
    const StepResult r = step();
    if (r.skipped) {
      say(fmt::format("step {}: {}; step skipped (weights unchanged, {} in a row)", r.step,
                      !std::isfinite(r.loss) ? fmt::format("loss is {}", r.loss)
                                             : fmt::format("gradient norm is {}", r.grad_norm),
                      s.meta.skipped_in_a_row));
      continue;
    }
    const std::string rate = with_thousands(s.tokens_per_step / r.seconds, 0);
    progress.update(r.step, fmt::format("loss {:.4f} | lr {:.2e} | {} tok/s", r.loss, r.lr, rate));
    if (!tty && r.step % cfg.train.log_every == 0) {
      say(fmt::format("step {:>6}/{} | loss {:.4f} | lr {:.2e} | norm {:.3f} | {} tok/s", r.step,
                      cfg.train.steps, r.loss, r.lr, r.grad_norm, rate));
    }
    if (cfg.train.eval_every > 0 && r.step % cfg.train.eval_every == 0 &&
        r.step != cfg.train.steps) {
      say_eval(evaluate());
    }
    if (cfg.output.checkpoint_every > 0 && r.step % cfg.output.checkpoint_every == 0 &&
        r.step != end_step) {
      checkpoint();
    }
  }
  if (s.step == cfg.train.steps && s.last_eval_step != s.step) say_eval(evaluate());
  if (s.steps_here > 0 && s.last_checkpoint_step != s.step) checkpoint();
  progress.finish(s.steps_here > 0 ? fmt::format("loss {:.4f}", s.last_loss) : std::string());

  summary.steps_done = s.step;
  summary.last_train_loss = s.last_loss;
  summary.evals = s.evals;
  if (!s.evals.empty()) summary.final_val_loss = s.evals.back().val_loss;
  summary.checkpoint = s.last_checkpoint;
  summary.tokens_per_second =
      s.train_seconds > 0 ? s.steps_here * s.tokens_per_step / s.train_seconds : 0;
  s.metrics->write(
      {{"type", "summary"},
       {"step", s.step},
       {"steps_this_process", s.steps_here},
       {"tokens_per_s", summary.tokens_per_second},
       {"final_val_loss", summary.final_val_loss ? json(*summary.final_val_loss) : json(nullptr)},
       {"stop_reason", stop_reason_name(summary.stop_reason)},
       {"checkpoint", summary.checkpoint.string()}});
  return summary;
}

}  // namespace difftx
