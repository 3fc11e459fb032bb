// Training-step throughput of the CPU backend (fp32) on one run config (default configs/tiny.json):
// the Model on make_cpu_backend(DType::f32) with ParamSet::initialised, AdamW with the config's
// optim settings and schedule, random token batches of the config's batch x seq_len (fixed seed),
// W warm-up steps then N timed optimizer steps. One step = zero_grads + grad_accum x
// forward_backward + AdamW step (global-norm clip, decay on matrices), the work `difftx train`
// does per step minus data loading. Prints tokens/s from the median step time and overall, and
// one JSON line with the figures (stdout, and appended to --json FILE when given).
// --profile P: P more steps after the timed ones (which they do not change) through OpProfiler,
// printing the time per backend op family (bench/common/op_profiler.h).
// bench/train/torch_train_cpu.py is the PyTorch side; bench/train/run_cpu_train_bench.sh runs both.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "difftx/cpu/cpu_backend.h"
#include "difftx/model/model.h"
#include "difftx/model/params.h"
#include "difftx/train/optimizer.h"
#include "difftx/train/run_config.h"
#include "difftx/train/schedule.h"
#include "op_profiler.h"

namespace {

using namespace difftx;

struct Options {
  std::filesystem::path config = std::filesystem::path(DIFFTX_SOURCE_DIR) / "configs" / "tiny.json";
  int steps = 20;
  int warmup = 3;
  int threads = 0;  // 0: every core
  int profile = 0;  // profiled steps after the timed ones
  std::uint64_t seed = 1234;
  std::filesystem::path json_out;
};

struct Batch {
  Tensor inputs, targets;  // host (B, T) i32
};

// Random next-token windows: inputs and their shifted targets, ids uniform in [0, V).
std::vector<Batch> random_batches(int count, int B, int T, int V, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::int32_t> id(0, V - 1);
  std::vector<Batch> out;
  for (int i = 0; i < count; ++i) {
    Batch b{Tensor::empty({B, T}, DType::i32), Tensor::empty({B, T}, DType::i32)};
    auto* in = b.inputs.data<std::int32_t>();
    auto* tg = b.targets.data<std::int32_t>();
    for (int r = 0; r < B; ++r) {
      std::int32_t prev = id(rng);
      for (int t = 0; t < T; ++t) {
        const std::int32_t next = id(rng);
        in[std::int64_t(r) * T + t] = prev;
        tg[std::int64_t(r) * T + t] = next;
        prev = next;
      }
    }
    out.push_back(std::move(b));
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int usage(int code) {
  std::fprintf(code ? stderr : stdout,
               "usage: bench_train_cpu [--config RUN.json] [--steps N] [--warmup W] [--threads K]\n"
               "                       [--seed S] [--json FILE] [--profile P]\n"
               "  --config   run config (default %s/configs/tiny.json)\n"
               "  --steps    timed optimizer steps (default 20)\n"
               "  --warmup   untimed steps first (default 3)\n"
               "  --threads  OpenMP and OpenBLAS threads (default 0: every core)\n"
               "  --seed     seed of the random token batches (default 1234)\n"
               "  --json     also append the result line to FILE\n"
               "  --profile  P more steps timed per backend op family (default 0)\n",
               DIFFTX_SOURCE_DIR);
  return code;
}

int parse_int(const std::string& flag, const std::string& value, int min) {
  std::size_t used = 0;
  int v = 0;
  try {
    v = std::stoi(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || v < min) {
    fail("bench_train_cpu: {} must be an integer >= {}, got '{}'", flag, min, value);
  }
  return v;
}

int run(const Options& opt) {
  const int threads = opt.threads > 0 ? opt.threads : omp_get_num_procs();
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);

  const RunConfig cfg = load_run_config(opt.config);
  const ModelConfig& mc = cfg.model;
  const int B = cfg.data.batch_size, T = cfg.data.seq_len, accum = cfg.optim.grad_accum;
  const double tokens_per_step = double(B) * T * accum;

  // Every run goes through the wrapper; it reads the clock only in the --profile steps.
  std::unique_ptr<Backend> cpu = make_cpu_backend(DType::f32);
  bench::HostClock host_clock;
  bench::OpProfiler backend(*cpu, host_clock, mc.vocab_size, mc.d_model);
  Model model(mc, backend, ParamSet::initialised(mc, cfg.train.seed, DType::f32, Device::cpu));
  AdamW optimizer(model, cfg.optim);
  const auto batches = random_batches(4, B, T, mc.vocab_size, opt.seed);
  const std::int64_t params = parameter_count(mc);

  std::fprintf(
      stderr,
      "bench_train_cpu: %s (%s, %lld parameters), %d x %d x %d tokens per step, %d threads, "
      "%d warm-up + %d timed steps\n",
      opt.config.string().c_str(), attention_kind_name(mc.attention),
      static_cast<long long>(params), accum, B, T, threads, opt.warmup, opt.steps);

  int step = 0;
  std::size_t micro = 0;
  auto one_step = [&]() {
    model.zero_grads();
    double loss = 0;
    for (int m = 0; m < accum; ++m) {
      const Batch& b = batches[micro++ % batches.size()];
      loss += model.forward_backward(b.inputs, b.targets, 1.0 / accum) / accum;
    }
    optimizer.step(learning_rate(cfg.schedule, step));
    ++step;
    if (!std::isfinite(loss)) fail("bench_train_cpu: loss is {} at step {}", loss, step);
    return loss;
  };
  using clock = std::chrono::steady_clock;
  auto seconds_since = [](clock::time_point t) {
    return std::chrono::duration<double>(clock::now() - t).count();
  };

  double first_loss = 0, last_loss = 0;
  for (int i = 0; i < opt.warmup; ++i) {
    const double l = one_step();
    if (i == 0) first_loss = l;
  }
  std::vector<double> step_s;
  const auto t0 = clock::now();
  for (int i = 0; i < opt.steps; ++i) {
    const auto s0 = clock::now();
    last_loss = one_step();
    step_s.push_back(seconds_since(s0));
    if (opt.warmup == 0 && i == 0) first_loss = last_loss;
  }
  const double total_s = seconds_since(t0);
  const double med = median(step_s);
  const double tps_median = tokens_per_step / med;
  const double tps_overall = tokens_per_step * opt.steps / total_s;

  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v ? v : "");
  };

  std::printf("difftx cpu f32  %-8s params %lld  %.0f tokens/step  %d threads\n",
              attention_kind_name(mc.attention), static_cast<long long>(params), tokens_per_step,
              threads);
  std::printf("  step ms: median %.2f  min %.2f  max %.2f  mean %.2f\n", med * 1e3,
              *std::min_element(step_s.begin(), step_s.end()) * 1e3,
              *std::max_element(step_s.begin(), step_s.end()) * 1e3, total_s / opt.steps * 1e3);
  std::printf("  tokens/s: %.0f (median step)  %.0f (overall)\n", tps_median, tps_overall);
  std::printf("  loss: %.4f (first) -> %.4f (last); ln V = %.4f\n", first_loss, last_loss,
              std::log(double(mc.vocab_size)));

  nlohmann::json j = {
      {"bench", "train_cpu"},
      {"side", "difftx"},
      {"config", opt.config.string()},
      {"attention", attention_kind_name(mc.attention)},
      {"params", params},
      {"batch", B},
      {"seq_len", T},
      {"grad_accum", accum},
      {"tokens_per_step", tokens_per_step},
      {"threads", threads},
      {"warmup", opt.warmup},
      {"steps", opt.steps},
      {"step_ms_median", med * 1e3},
      {"step_ms_mean", total_s / opt.steps * 1e3},
      {"tokens_per_s_median", tps_median},
      {"tokens_per_s_overall", tps_overall},
      {"first_loss", first_loss},
      {"last_loss", last_loss},
      {"env",
       {{"OMP_WAIT_POLICY", env("OMP_WAIT_POLICY")},
        {"OPENBLAS_THREAD_TIMEOUT", env("OPENBLAS_THREAD_TIMEOUT")},
        {"OPENBLAS_CORETYPE", env("OPENBLAS_CORETYPE")}}},
  };
  const std::string line = j.dump();
  std::printf("%s\n", line.c_str());
  if (!opt.json_out.empty()) {
    std::ofstream f(opt.json_out, std::ios::app);
    f << line << "\n";
    if (!f) fail("bench_train_cpu: cannot append to {}", opt.json_out.string());
  }

  if (opt.profile > 0) {
    backend.set_enabled(true);
    double prof_s = 0;
    for (int i = 0; i < opt.profile; ++i) {
      const auto s0 = clock::now();
      one_step();
      prof_s += seconds_since(s0);
    }
    backend.set_enabled(false);
    const double n = opt.profile, step_ms = prof_s / n * 1e3;
    std::vector<std::pair<std::string, bench::HostClock::Total>> rows(host_clock.totals().begin(),
                                                                      host_clock.totals().end());
    std::sort(rows.begin(), rows.end(),
              [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
    std::printf(
        "\nprofile: time per backend op family, mean of %d steps of %.2f ms "
        "(timed median %.2f ms)\n",
        opt.profile, step_ms, med * 1e3);
    double sum_ms = 0;
    for (const auto& [family, t] : rows) {
      const double ms = t.seconds / n * 1e3;
      sum_ms += ms;
      std::printf("  %-30s %9.2f ms  %5.1f%%  %6.0f calls/step\n", family.c_str(), ms,
                  100.0 * ms / step_ms, double(t.calls) / n);
    }
    std::printf("  %-30s %9.2f ms  %5.1f%%\n", "(outside backend ops)", step_ms - sum_ms,
                100.0 * (step_ms - sum_ms) / step_ms);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) fail("bench_train_cpu: {} needs a value", a);
        return argv[++i];
      };
      if (a == "--config")
        opt.config = next();
      else if (a == "--steps")
        opt.steps = parse_int(a, next(), 1);
      else if (a == "--warmup")
        opt.warmup = parse_int(a, next(), 0);
      else if (a == "--threads")
        opt.threads = parse_int(a, next(), 0);
      else if (a == "--seed")
        opt.seed = std::uint64_t(parse_int(a, next(), 0));
      else if (a == "--json")
        opt.json_out = next();
      else if (a == "--profile")
        opt.profile = parse_int(a, next(), 0);
      else if (a == "-h" || a == "--help")
        return usage(0);
      else {
        std::fprintf(stderr, "bench_train_cpu: unknown argument '%s'\n", a.c_str());
        return usage(2);
      }
    }
    return run(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train_cpu: error: %s\n", e.what());
    return 1;
  }
}
