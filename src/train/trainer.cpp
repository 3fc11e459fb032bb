// The training loop (see trainer.h): setup, resume, steps, evaluation, checkpoints, metrics.
#include "difftx/train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <regex>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/core/progress.h"
#include "difftx/data/loader.h"
#include "difftx/data/tokenizer.h"
#include "difftx/runtime/backend_factory.h"
#include "difftx/model/checkpoint.h"
#include "difftx/model/model.h"
#include "difftx/train/optimizer.h"
#include "difftx/train/train_state.h"

namespace difftx {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kStateFile = "train_state.safetensors";

fs::path checkpoint_dir(const fs::path& run_dir, int step) {
  return run_dir / "checkpoints" / fmt::format("step_{:07d}", step);
}

bool complete_checkpoint(const fs::path& dir) {
  for (const char* f : {"model.safetensors", "config.json", kStateFile}) {
    if (!fs::exists(dir / f)) return false;
  }
  return true;
}

Tensor to_tensor(const std::vector<std::int32_t>& v, int batch, int seq) {
  Tensor t = Tensor::empty({batch, seq}, DType::i32);
  std::copy(v.begin(), v.end(), t.data<std::int32_t>());
  return t;
}

// Unigram entropy (nats) of the training tokens: the loss of a model that ignores context.
double unigram_entropy(const data::ShardSet& set) {
  std::vector<double> counts(set.vocab_size(), 0.0);
  double total = 0;
  std::vector<std::int32_t> buf(1 << 16);
  for (const auto& shard : set.shards()) {
    for (std::uint64_t start = 0; start < shard.size(); start += buf.size()) {
      std::uint64_t n = std::min<std::uint64_t>(buf.size(), shard.size() - start);
      shard.copy(start, n, buf.data());
      for (std::uint64_t i = 0; i < n; ++i) counts[buf[i]] += 1;
      total += double(n);
    }
  }
  double h = 0;
  for (double c : counts) {
    if (c > 0) h -= c / total * std::log(c / total);
  }
  return h;
}

class MetricsLog {
 public:
  MetricsLog(const fs::path& file, int resume_step) : file_(file) {
    if (resume_step >= 0 && fs::exists(file)) {
      // Keep the lines up to the resumed step, so a resumed run's log reads like one run.
      std::ifstream in(file);
      std::string line, kept;
      while (std::getline(in, line)) {
        if (line.empty()) continue;
        try {
          if (json::parse(line).value("step", 0) <= resume_step) kept += line + "\n";
        } catch (const json::exception&) {
        }
      }
      write_file_atomic(file, kept);
    } else if (resume_step < 0) {
      write_file_atomic(file, "");
    }
    out_.open(file, std::ios::app);
    if (!out_) fail("cannot append to metrics file '{}'", file.string());
  }
  void write(const json& j) {
    out_ << j.dump() << "\n";
    out_.flush();
  }

 private:
  fs::path file_;
  std::ofstream out_;
};

struct Evaluator {
  data::EvalLoader loader;
  int max_batches;

  double run(Model& model) {
    loader.reset();
    data::Batch batch;
    double loss_sum = 0, counted = 0;
    int n = 0;
    while ((max_batches == 0 || n < max_batches) && loader.next(batch)) {
      std::vector<std::int32_t> targets = batch.targets();
      for (std::size_t i = 0; i < targets.size(); ++i) {
        if (!batch.mask[i]) targets[i] = -1;
      }
      const double c = double(batch.counted_targets());
      if (c == 0) continue;
      loss_sum += c * model.forward_loss(to_tensor(batch.inputs(), batch.batch_size, batch.seq_len),
                                         to_tensor(targets, batch.batch_size, batch.seq_len));
      counted += c;
      ++n;
    }
    DIFFTX_CHECK(counted > 0, "the validation split yields no targets at seq_len {}", batch.seq_len);
    return loss_sum / counted;
  }
};

void prune_checkpoints(const fs::path& run_dir, int keep_last) {
  std::vector<fs::path> dirs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(run_dir / "checkpoints", ec)) {
    if (e.is_directory() && std::regex_match(e.path().filename().string(), std::regex("step_\\d{7}"))) {
      dirs.push_back(e.path());
    }
  }
  std::sort(dirs.begin(), dirs.end());
  for (std::size_t i = 0; i + std::size_t(keep_last) < dirs.size(); ++i) fs::remove_all(dirs[i], ec);
}

}  // namespace

fs::path latest_checkpoint(const fs::path& run_dir) {
  std::vector<fs::path> dirs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(run_dir / "checkpoints", ec)) {
    if (e.is_directory() && std::regex_match(e.path().filename().string(), std::regex("step_\\d{7}")) &&
        complete_checkpoint(e.path())) {
      dirs.push_back(e.path());
    }
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs.empty() ? fs::path() : dirs.back();
}

TrainSummary train_model(const RunConfig& cfg, const TrainOptions& options) {
  const fs::path run_dir = cfg.output.dir;
  ensure_writable_directory(run_dir);
  ensure_writable_directory(run_dir / "checkpoints");
  const fs::path tokenizer_path = cfg.data.path / "tokenizer.model";
  if (!fs::exists(tokenizer_path)) {
    fail("no tokenizer at '{}': prepare the data first (`difftx data prepare --out {}`)",
         tokenizer_path.string(), cfg.data.path.string());
  }

  data::LoaderOptions lo;
  lo.path = cfg.data.path;
  lo.seq_len = cfg.data.seq_len;
  lo.batch_size = cfg.data.batch_size;
  lo.seed = cfg.data.seed;
  lo.split = "train";
  data::TrainLoader loader(lo);
  if (loader.shards().vocab_size() != std::uint32_t(cfg.model.vocab_size)) {
    fail("the model's vocab_size ({}) differs from the data's ({}) in '{}': set model.vocab_size to {}",
         cfg.model.vocab_size, loader.shards().vocab_size(), cfg.data.path.string(),
         loader.shards().vocab_size());
  }
  data::LoaderOptions vo = lo;
  vo.split = "val";
  Evaluator evaluator{data::EvalLoader(vo), cfg.train.eval_batches};

  auto backend = make_backend(cfg.train.device);
  TrainStateMeta meta;
  meta.init_seed = cfg.train.seed;
  int start_step = 0;
  ParamSet params;
  fs::path resume_from;
  if (options.resume) {
    resume_from = latest_checkpoint(run_dir);
    if (resume_from.empty()) {
      fail("--resume: no complete checkpoint under '{}' (start without --resume)",
           (run_dir / "checkpoints").string());
    }
    ModelCheckpoint ck = load_model_checkpoint(resume_from);
    if (ck.config.to_json() != cfg.model.to_json()) {
      fail("--resume: checkpoint '{}' is of another architecture than the run config's model",
           resume_from.string());
    }
    for (std::size_t i = 0; i < ck.params.size(); ++i) {
      Tensor t = ck.params.tensor(i).to_dtype(backend->param_dtype());
      params.add(ck.params.name(i), backend->device() == Device::cpu ? t : t.to(backend->device()));
    }
  } else {
    params = ParamSet::initialised(cfg.model, cfg.train.seed, backend->param_dtype(), backend->device());
  }
  Model model(cfg.model, *backend, std::move(params));
  AdamW optimizer(model, cfg.optim);
  if (!resume_from.empty()) {
    meta = load_train_state(resume_from / kStateFile, optimizer);
    loader.restore(data::LoaderState::from_json(meta.loader));
    start_step = meta.step;
  }

  TrainSummary summary;
  summary.parameters = model.params().numel();
  summary.unigram_entropy = unigram_entropy(loader.shards());
  MetricsLog metrics(run_dir / "metrics.jsonl", options.resume ? start_step : -1);
  if (!options.resume) {
    metrics.write({{"type", "run"}, {"step", 0}, {"parameters", summary.parameters},
                   {"unigram_entropy", summary.unigram_entropy}, {"config", cfg.source},
                   {"backend", backend->name()}});
  }
  const bool tty = !options.quiet && ::isatty(fileno(stderr));
  auto say = [&](const std::string& line) {
    if (options.quiet) return;
    fmt::print(stderr, "{}{}\n", tty ? "\r\033[K" : "", line);
  };
  say(fmt::format("difftx train: {} {} parameters on {} ({}), {} steps of {} x {} x {} tokens; "
                  "unigram entropy of the data {:.3f} nats{}",
                  attention_kind_name(cfg.model.attention), summary.parameters, cfg.train.device,
                  backend->name(), cfg.train.steps, cfg.optim.grad_accum, cfg.data.batch_size,
                  cfg.data.seq_len, summary.unigram_entropy,
                  resume_from.empty() ? "" : fmt::format("; resumed from {}", resume_from.string())));

  auto save_checkpoint = [&](int step) {
    const fs::path final_dir = checkpoint_dir(run_dir, step);
    const fs::path partial = run_dir / "checkpoints" / fmt::format(".step_{:07d}.partial", step);
    std::error_code ec;
    fs::remove_all(partial, ec);
    try {
      save_model_checkpoint(partial, cfg.source, cfg.model, model.params(), tokenizer_path, step);
      meta.step = step;
      meta.loader = loader.state().to_json();
      save_train_state(partial / kStateFile, optimizer, meta);
      fs::remove_all(final_dir, ec);
      fs::rename(partial, final_dir);
    } catch (const Error& e) {
      fs::remove_all(partial, ec);
      fail("checkpoint at step {} failed: {} (earlier checkpoints are intact under {})", step, e.what(),
           (run_dir / "checkpoints").string());
    } catch (const fs::filesystem_error& e) {
      fs::remove_all(partial, ec);
      fail("checkpoint at step {} failed: {} (earlier checkpoints are intact)", step, e.what());
    }
    prune_checkpoints(run_dir, cfg.output.keep_last);
    summary.checkpoint = final_dir;
  };
  auto evaluate = [&](int step) {
    EvalPoint p{step, evaluator.run(model), model.lambdas()};
    json lam = p.lambdas;
    metrics.write({{"type", "eval"}, {"step", step}, {"val_loss", p.val_loss},
                   {"val_ppl", std::exp(p.val_loss)}, {"lambda", lam}});
    std::string lam_text;
    for (double l : p.lambdas) lam_text += fmt::format(" {:.3f}", l);
    say(fmt::format("step {:>6} | val loss {:.4f} | ppl {:.2f}{}", step, p.val_loss, std::exp(p.val_loss),
                    lam_text.empty() ? "" : " | lambda" + lam_text));
    summary.evals.push_back(p);
    summary.final_val_loss = p.val_loss;
  };

  const int end_step = options.stop_after ? std::min(*options.stop_after, cfg.train.steps) : cfg.train.steps;
  ProgressOptions po;
  po.unit = "step";
  po.mode = options.quiet ? ProgressMode::quiet : ProgressMode::automatic;
  Progress progress("train", cfg.train.steps, po);
  const double tokens_per_step = double(cfg.optim.grad_accum) * cfg.data.batch_size * cfg.data.seq_len;
  const auto t0 = std::chrono::steady_clock::now();
  double train_seconds = 0;
  data::Batch batch;
  for (int step = start_step; step < end_step; ++step) {
    const auto ts = std::chrono::steady_clock::now();
    const double lr = learning_rate(cfg.schedule, step);
    model.zero_grads();
    double loss = 0;
    for (int micro = 0; micro < cfg.optim.grad_accum; ++micro) {
      loader.next_batch(batch);
      loss += model.forward_backward(to_tensor(batch.inputs(), batch.batch_size, batch.seq_len),
                                     to_tensor(batch.targets(), batch.batch_size, batch.seq_len),
                                     1.0 / cfg.optim.grad_accum) /
              cfg.optim.grad_accum;
    }
    double norm = std::isfinite(loss) ? optimizer.step(lr) : loss;
    if (!std::isfinite(loss) || !std::isfinite(norm)) {
      const std::string what = !std::isfinite(loss) ? fmt::format("loss is {}", loss)
                                                     : fmt::format("gradient norm is {}", norm);
      if (cfg.train.nan_policy == NanPolicy::stop) {
        fail("{} at step {}; stopped without updating the weights (last checkpoint: {}). Lower "
             "schedule.lr or set train.nan_policy to \"skip\"",
             what, step + 1, summary.checkpoint.empty() ? "none" : summary.checkpoint.string());
      }
      if (++meta.skipped_in_a_row > cfg.train.max_skipped_steps) {
        fail("{} at step {}: {} non-finite steps in a row (train.max_skipped_steps = {}); stopping",
             what, step + 1, meta.skipped_in_a_row, cfg.train.max_skipped_steps);
      }
      say(fmt::format("step {}: {}; step skipped (weights unchanged, {} in a row)", step + 1, what,
                      meta.skipped_in_a_row));
      metrics.write({{"type", "skip"}, {"step", step + 1}, {"reason", what}});
      continue;
    }
    meta.skipped_in_a_row = 0;
    backend->synchronize();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - ts).count();
    train_seconds += dt;
    const int done = step + 1;
    summary.steps_done = done;
    summary.last_train_loss = loss;
    summary.train_losses.emplace_back(done, loss);
    metrics.write({{"type", "train"}, {"step", done}, {"loss", loss}, {"lr", lr}, {"grad_norm", norm},
                   {"tokens_per_s", tokens_per_step / dt},
                   {"elapsed_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}});
    progress.update(done, fmt::format("loss {:.4f} | lr {:.2e} | {:.0f} tok/s", loss, lr, tokens_per_step / dt));
    if (!tty && done % cfg.train.log_every == 0) {
      say(fmt::format("step {:>6}/{} | loss {:.4f} | lr {:.2e} | norm {:.3f} | {:.0f} tok/s", done,
                      cfg.train.steps, loss, lr, norm, tokens_per_step / dt));
    }
    if (cfg.train.eval_every > 0 && done % cfg.train.eval_every == 0 && done != cfg.train.steps) evaluate(done);
    if (cfg.output.checkpoint_every > 0 && done % cfg.output.checkpoint_every == 0 && done != end_step) {
      save_checkpoint(done);
    }
  }
  summary.steps_done = std::max(summary.steps_done, start_step);
  if (end_step == cfg.train.steps) evaluate(cfg.train.steps);
  if (summary.steps_done > start_step || summary.checkpoint.empty()) save_checkpoint(summary.steps_done);
  progress.finish(fmt::format("loss {:.4f}", summary.last_train_loss));
  const int steps_run = summary.steps_done - start_step;
  summary.tokens_per_second = train_seconds > 0 ? steps_run * tokens_per_step / train_seconds : 0;
  metrics.write({{"type", "summary"}, {"step", summary.steps_done}, {"tokens_per_s", summary.tokens_per_second},
                 {"final_val_loss", summary.final_val_loss}, {"checkpoint", summary.checkpoint.string()}});
  return summary;
}

TrainSummary read_metrics(const fs::path& file) {
  std::ifstream in(file);
  if (!in) fail("cannot read metrics file '{}'", file.string());
  TrainSummary s;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      fail("{}: malformed line: {}", file.string(), e.what());
    }
    const std::string type = j.value("type", "");
    if (type == "run") {
      s.parameters = j.value("parameters", std::int64_t(0));
      s.unigram_entropy = j.value("unigram_entropy", 0.0);
    } else if (type == "train") {
      s.train_losses.emplace_back(j.at("step").get<int>(), j.at("loss").get<double>());
      s.steps_done = j.at("step").get<int>();
      s.last_train_loss = j.at("loss").get<double>();
    } else if (type == "eval") {
      s.evals.push_back({j.at("step").get<int>(), j.at("val_loss").get<double>(),
                         j.at("lambda").get<std::vector<double>>()});
      s.final_val_loss = s.evals.back().val_loss;
    } else if (type == "summary") {
      s.tokens_per_second = j.value("tokens_per_s", 0.0);
    }
  }
  return s;
}

}  // namespace difftx
