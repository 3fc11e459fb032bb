// Trainer setup (see trainer.h): options that contradict, the data against the model (with
// hints that agree), the run-folder rules (one run per folder, --resume, --overwrite),
// resume and --init-from weights, and the run's first metrics records.
#include <fmt/format.h>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/core/version.h"
#include "difftx/model/checkpoint.h"
#include "difftx/runtime/backend_factory.h"
#include "difftx/runtime/model_loading.h"
#include "difftx/train/parallel.h"
#include "trainer_state.h"

namespace difftx {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

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

// A loader position saved by a run of another world size, for this rank's loader: the global
// batch (ranks x rows per rank) decides the sample order, so keeping it continues the run.
data::LoaderState for_this_world(data::LoaderState s, const data::LoaderOptions& o) {
  if (s.world == o.world && s.batch_size == o.batch_size) return s;
  if (std::int64_t(s.world) * s.batch_size != std::int64_t(o.world) * o.batch_size) {
    fail(
        "--resume: the checkpoint's run drew global batches of {} rows ({} rank(s) x {}), this run "
        "{} ({} x {}): keep data.batch_size (the global micro-batch) to resume at another world "
        "size",
        s.world * s.batch_size, s.world, s.batch_size, o.world * o.batch_size, o.world,
        o.batch_size);
  }
  s.world = o.world;
  s.batch_size = o.batch_size;
  return s;
}

}  // namespace

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
  if (opt.stop_after && *opt.stop_after < 1) {
    fail("--stop-after must be at least 1, got {}", *opt.stop_after);
  }

  // Data first: nothing is written before the inputs are known to be usable.
  tokenizer_path = cfg.data.path / "tokenizer.model";
  check_data(cfg, tokenizer_path);
  data::LoaderOptions lo;
  lo.path = cfg.data.path;
  lo.seq_len = cfg.data.seq_len;
  lo.batch_size = cfg.data.batch_size;
  lo.seed = cfg.data.seed;
  lo.split = "train";
  if (par()) {
    // data.batch_size is the global micro-batch: each rank draws its share of every batch.
    lo.rank = par()->rank();
    lo.world = par()->world();
    if (cfg.data.batch_size % lo.world != 0) {
      fail(
          "data.batch_size {} (the global micro-batch) does not split evenly over {} ranks: use "
          "a multiple of {}",
          cfg.data.batch_size, lo.world, lo.world);
    }
    lo.batch_size = cfg.data.batch_size / lo.world;
  }
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
  if (!par()) optimizer = std::make_unique<AdamW>(*model, cfg.optim);
  meta.init_seed = cfg.train.seed;
  if (!resumed_from.empty()) {
    if (par()) {
      // Whole moments, as any world size saved them; the runtime keeps this rank's shard.
      const auto specs = parameter_specs(cfg.model);
      ParamSet m = ParamSet::zeros_like_specs(specs, DType::f32, Device::cpu);
      ParamSet v = ParamSet::zeros_like_specs(specs, DType::f32, Device::cpu);
      int adam_steps = 0;
      meta = load_train_state(resumed_from / kTrainStateFile, m, v, adam_steps);
      par()->load_optimizer_state(m, v, adam_steps);
    } else {
      meta = load_train_state(resumed_from / kTrainStateFile, *optimizer);
    }
    loader->restore(for_this_world(data::LoaderState::from_json(meta.loader), lo));
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
  if (writer()) unigram = unigram_entropy(loader->shards());
  tokens_per_step = double(cfg.optim.grad_accum) * cfg.data.batch_size * cfg.data.seq_len;
  flops = training_flops_per_token(cfg.model, cfg.data.seq_len);
  // Every rank checks the run folder before rank 0 writes to it.
  if (par()) par()->max({0.0});
  if (writer()) open_run_folder();
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
    if (!resumed_from.empty() && !fs::exists(from / kTrainStateFile)) {
      fail(
          "--resume: checkpoint '{}' has no {} (it holds weights only); use --init-from to start a "
          "new run from its weights",
          from.string(), kTrainStateFile);
    }
    params = params_for_backend(ck.params, *backend);
  } else {
    params =
        ParamSet::initialised(cfg.model, cfg.train.seed, backend->param_dtype(), backend->device());
  }
  if (par()) {
    model = &par()->build_model(cfg.model, *backend, params, cfg.optim);
  } else {
    own_model = std::make_unique<Model>(cfg.model, *backend, std::move(params));
    model = own_model.get();
  }
}

void Trainer::State::open_run_folder() {
  if (opt.overwrite) store.clear();
  store.prepare();
  json common = {{"difftx_version", difftx_version()},
                 {"backend", backend->name()},
                 {"device", device.name},
                 {"world", par() ? par()->world() : 1}};
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

}  // namespace difftx
