// The Trainer's work (see trainer.h): one optimizer step with its gradient hook and NaN policy,
// evaluation, checkpoints through the CheckpointStore, and run(): the loop with its log,
// progress and stop requests. Setup lives in trainer_setup.cpp.
#include "difftx/train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>

#include "difftx/core/error.h"
#include "difftx/core/number_format.h"
#include "difftx/core/progress.h"
#include "difftx/model/checkpoint.h"
#include "difftx/runtime/interrupt.h"
#include "difftx/train/parallel.h"
#include "trainer_state.h"

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

}  // namespace

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
  ParallelRuntime* par = s.par();
  const double grad_scale =
      par ? par->grad_scale(cfg.optim.grad_accum) : 1.0 / cfg.optim.grad_accum;
  for (int micro = 0; micro < cfg.optim.grad_accum; ++micro) {
    s.loader->next_batch(s.batch);
    const data::Batch& b = s.batch;
    if (par) par->before_micro_batch(micro == cfg.optim.grad_accum - 1);
    // Task data marks its targets: the loss counts only those (labels() is -1 elsewhere).
    loss += model.forward_backward(token_tensor(b.inputs(), b.batch_size, b.seq_len),  // (B, T)
                                   token_tensor(b.labels(), b.batch_size, b.seq_len),  // (B, T)
                                   grad_scale) /
            cfg.optim.grad_accum;
  }
  if (par) loss = par->finish_gradients(loss);  // the mean over ranks: one decision everywhere
  if (s.hook) s.hook(model, loss);
  const double norm = !std::isfinite(loss) ? loss
                      : par                ? par->optimizer_step(r.lr)
                                           : s.optimizer->step(r.lr);
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
    s.log({{"type", "skip"}, {"step", s.step}, {"reason", what}});
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
                 {"elapsed_s", (s.metrics ? s.metrics->elapsed_before() : 0.0) +
                                   std::chrono::duration<double>(te - *s.t0).count()}};
  const int devices = par ? par->world() : 1;  // tokens_per_s counts every rank's tokens
  if (s.device.peak_flops) {
    record["mfu"] = tokens_per_s * s.flops.per_token / (*s.device.peak_flops * devices);
  }
  if (par) record["comm"] = par->step_metrics();
  s.log(record);
  return r;
}

EvalPoint Trainer::evaluate() {
  State& s = *s_;
  double val_loss = 0;
  if (s.par()) {
    // Each rank evaluates its share of the validation windows; the totals add up.
    const Evaluator::Totals mine = s.evaluator->totals(*s.model);
    const auto all = s.par()->sum({mine.loss_sum, mine.counted});
    DIFFTX_CHECK(all[1] > 0, "the validation split yields no targets at seq_len {}",
                 s.cfg.data.seq_len);
    val_loss = all[0] / all[1];
  } else {
    val_loss = s.evaluator->mean_loss(*s.model);
  }
  EvalPoint p{s.step, val_loss, s.model->lambdas()};
  s.log({{"type", "eval"},
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
  ParallelRuntime* par = s.par();
  ParamSet m, v;  // data parallelism: the sharded moments, whole on rank 0
  int adam_steps = 0;
  if (par) par->gather_optimizer_state(m, v, adam_steps);
  auto write = [&](const fs::path& partial) {
    save_model_checkpoint(partial, s.cfg.source, s.cfg.model, s.model->params(), s.tokenizer_path,
                          step);
    s.meta.step = step;
    s.meta.loader = s.loader->state().to_json();  // any rank's position restores every rank
    if (par) {
      save_train_state(partial / kTrainStateFile, m, v, adam_steps, s.meta);
    } else {
      save_train_state(partial / kTrainStateFile, *s.optimizer, s.meta);
    }
  };
  fs::path dir = s.store.folder_for(step);
  std::string failure;  // rank 0's, told to every rank so that none waits for it
  if (s.writer()) {
    try {
      dir = s.store.save(step, write);
      s.store.prune(s.cfg.output.keep_last, step);
    } catch (const Error& e) {
      if (!par) throw;
      failure = e.what();
    }
  }
  if (par && par->max({failure.empty() ? 0.0 : 1.0})[0] > 0) {
    if (!failure.empty()) throw Error(failure);
    fail("rank 0 could not write checkpoint step {} (its message names the cause)", step);
  }
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
  s.log({{"type", "summary"},
         {"step", s.step},
         {"steps_this_process", s.steps_here},
         {"tokens_per_s", summary.tokens_per_second},
         {"final_val_loss", summary.final_val_loss ? json(*summary.final_val_loss) : json(nullptr)},
         {"stop_reason", stop_reason_name(summary.stop_reason)},
         {"checkpoint", summary.checkpoint.string()}});
  return summary;
}

}  // namespace difftx
