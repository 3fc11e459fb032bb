// Training-step benchmark of the CUDA backend: for each run config given (the 125M presets in
// configs/), the Model on make_backend("cuda") with ParamSet::initialised, AdamW, synthetic
// random token batches (fixed seed), W warm-up steps then N timed optimizer steps
// (grad_accum x forward_backward + AdamW step, synchronized before each clock read). Prints
// tokens/s, ms/step and MFU per preset, DIFF V1 (and V2) time per token relative to the softmax
// baseline, and "RESULT,..." lines that bench/cuda/train_torch.py --ours reads.
//
// FLOPs per trained token (model FLOPs, written out in bench/README.md):
//   F = 6 * N_matmul + 3 * L * A_fwd
//   N_matmul = L * (q_dim*E + k_dim*E + v_dim*E + E*attn_out_dim + 3*E*F_ffn [+ h*E, V2 W_lambda])
//              + V*E (the output head; with tied embeddings the embedding matrix counted once)
//   A_fwd (attention score/mix products of one layer, forward, per token), with the causal mean
//   key count T_eff = (T + 1) / 2 (causal halving applied):
//     softmax (H heads of d):  QK^T 2*d*T_eff + PV 2*d*T_eff per head   = 4 * H * d * T_eff
//     DIFF V1 (h heads):       2 maps QK^T 2*(2*d*T_eff) + one PV of 2d 2*(2d)*T_eff = 8*h*d*T_eff
//     DIFF V2 (2h query heads of d): 4 * 2h * d * T_eff
//   times 3 for forward + backward (backward = 2 x forward). With H*d = E (softmax) and
//   2*h*d = E (V1) both give 12*L*E*T_eff; V2 (h*d = E) gives 24*L*E*T_eff.
// MFU = tokens/s * F / 989.4e12 (H100 SXM dense bf16 peak, no sparsity).
//
// --profile: 2 more steps (after the timed ones, which it does not change) through a wrapper
// around the backend that records CUDA events around every op (on the legacy default stream,
// which orders with the backend's blocking stream) and prints the time per op family (matmuls
// split into the output head and the rest, RMSNorm into the model's and DIFF V1's per-head one).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "difftx/model/backend.h"
#include "difftx/model/model.h"
#include "difftx/model/params.h"
#include "difftx/runtime/backend_factory.h"
#include "difftx/train/flops.h"
#include "difftx/train/optimizer.h"
#include "difftx/train/run_config.h"
#include "difftx/train/schedule.h"
#include "op_profiler.h"

namespace {

using namespace difftx;

constexpr double kPeakFlops = 989.4e12;  // H100 SXM, dense bf16 tensor-core peak

void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("{}: {}", what, cudaGetErrorString(e));
}

// ---- CUDA-event clock for the --profile steps (bench/common/op_profiler.h)
class EventClock final : public bench::OpClock {
 public:
  ~EventClock() override {
    for (auto e : pool_) cudaEventDestroy(e);
  }
  void time(const char* family, const std::function<void()>& fn) override {
    while (pool_.size() < next_ + 2) {
      cudaEvent_t e;
      cuda_check(cudaEventCreate(&e), "event create");
      pool_.push_back(e);
    }
    const std::size_t b = next_;
    next_ += 2;
    cuda_check(cudaEventRecord(pool_[b], 0), "event record");
    fn();
    cuda_check(cudaEventRecord(pool_[b + 1], 0), "event record");
    records_.push_back({b, family});
  }
  // Adds the recorded intervals to the per-family totals (call after a synchronize).
  void collect() {
    for (const auto& r : records_) {
      float ms = 0;
      cuda_check(cudaEventElapsedTime(&ms, pool_[r.begin], pool_[r.begin + 1]), "event time");
      totals_[r.family] += ms;
    }
    records_.clear();
    next_ = 0;
  }
  const std::map<std::string, double>& totals() const { return totals_; }

 private:
  struct Record {
    std::size_t begin;
    const char* family;
  };
  std::vector<cudaEvent_t> pool_;
  std::size_t next_ = 0;
  std::vector<Record> records_;
  std::map<std::string, double> totals_;
};

// ---- one preset
struct Options {
  int warmup = 3;
  int steps = 10;
  int profile = 0;  // profiled steps after the timed ones (--profile: 2)
  std::uint64_t seed = 1234;
};

struct Result {
  std::string name;
  AttentionKind kind = AttentionKind::softmax;
  std::int64_t params = 0;
  double tokens_per_step = 0;
  double ms_median = 0, ms_mean = 0, ms_min = 0;
  double tokens_per_s = 0;
  FlopCount flops;
  double mfu = 0;
  double first_loss = 0, last_loss = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Random next-token windows: batch (B, T) inputs and their shifted targets, ids in [0, V).
struct Batch {
  Tensor inputs, targets;
};

std::vector<Batch> synthetic_batches(int count, int B, int T, int V, std::uint64_t seed) {
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

Result run_preset(const std::filesystem::path& path, const Options& opt) {
  const RunConfig cfg = load_run_config(path);
  const ModelConfig& mc = cfg.model;
  const int B = cfg.data.batch_size, T = cfg.data.seq_len, accum = cfg.optim.grad_accum;
  Result res;
  res.name = path.stem().string();
  res.kind = mc.attention;
  res.params = parameter_count(mc);
  res.tokens_per_step = double(B) * T * accum;
  res.flops = training_flops_per_token(mc, T);

  // Every run goes through the wrapper; it records events only while profiling is switched on
  // (after the timed steps), so the timed steps pay one extra virtual call per op.
  std::unique_ptr<Backend> cuda = make_backend("cuda");
  EventClock events;
  bench::OpProfiler backend(*cuda, events, mc.vocab_size, mc.d_model);
  Model model(mc, backend,
              ParamSet::initialised(mc, cfg.train.seed, backend.param_dtype(), backend.device()));
  AdamW optimizer(model, cfg.optim);
  const auto batches = synthetic_batches(4, B, T, mc.vocab_size, opt.seed);

  int step = 0, micro_index = 0;
  auto one_step = [&]() {
    model.zero_grads();
    double loss = 0;
    for (int m = 0; m < accum; ++m) {
      const Batch& b = batches[std::size_t(micro_index++) % batches.size()];
      loss += model.forward_backward(b.inputs, b.targets, 1.0 / accum) / accum;
    }
    optimizer.step(learning_rate(cfg.schedule, step));
    ++step;
    backend.synchronize();
    cuda_check(cudaDeviceSynchronize(), "step");
    if (!std::isfinite(loss)) fail("{}: loss is {} at step {}", res.name, loss, step);
    return loss;
  };
  using clock = std::chrono::steady_clock;
  auto ms_since = [](clock::time_point t) {
    return std::chrono::duration<double, std::milli>(clock::now() - t).count();
  };
  std::fprintf(stderr, "%s: %d warm-up + %d timed steps of %d x %d x %d tokens\n", res.name.c_str(),
               opt.warmup, opt.steps, accum, B, T);
  for (int i = 0; i < opt.warmup; ++i) {
    const double l = one_step();
    if (i == 0) res.first_loss = l;
  }
  std::vector<double> ms;
  const auto t0 = clock::now();
  for (int i = 0; i < opt.steps; ++i) {
    const auto s0 = clock::now();
    res.last_loss = one_step();
    ms.push_back(ms_since(s0));
  }
  const double total_ms = ms_since(t0);
  res.ms_median = median(ms);
  res.ms_mean = total_ms / opt.steps;
  res.ms_min = *std::min_element(ms.begin(), ms.end());
  res.tokens_per_s = res.tokens_per_step / (res.ms_median / 1e3);
  res.mfu = res.tokens_per_s * res.flops.per_token / kPeakFlops;

  if (opt.profile > 0) {
    backend.set_enabled(true);
    double prof_ms = 0;
    for (int i = 0; i < opt.profile; ++i) {
      const auto s0 = clock::now();
      one_step();
      prof_ms += ms_since(s0);
      events.collect();
    }
    backend.set_enabled(false);
    const double n = opt.profile, step_ms = prof_ms / n;
    double sum = 0;
    for (const auto& [k, v] : events.totals()) sum += v / n;
    std::printf(
        "\nprofile %s: CUDA-event time per op family, mean of %d steps of %.2f ms "
        "(unprofiled median %.2f ms)\n",
        res.name.c_str(), opt.profile, step_ms, res.ms_median);
    for (const auto& [k, v] : events.totals()) {
      std::printf("  %-18s %9.3f ms  %5.1f%%   %8.3f ms per micro-batch\n", k.c_str(), v / n,
                  100.0 * v / n / step_ms, v / n / accum);
    }
    std::printf("  %-18s %9.3f ms  %5.1f%%\n", "(not in any op)", step_ms - sum,
                100.0 * (step_ms - sum) / step_ms);
  }
  std::size_t free_b = 0, total_b = 0;
  cuda_check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
  std::fprintf(
      stderr, "%s: loss %.4f -> %.4f; device memory in use %.1f GiB (caching allocator included)\n",
      res.name.c_str(), res.first_loss, res.last_loss, double(total_b - free_b) / (1 << 30));
  return res;
}

const Result* find_kind(const std::vector<Result>& rs, AttentionKind k) {
  for (const auto& r : rs)
    if (r.kind == k) return &r;
  return nullptr;
}

int usage() {
  std::fprintf(stderr,
               "usage: bench_train [--warmup W] [--steps N] [--profile] [--seed S] CONFIG.json...\n"
               "  e.g. bench_train configs/gpt-125m-diff-v1.json configs/gpt-125m-softmax.json\n"
               "  --profile: time every backend op with CUDA events (slower; separate numbers)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  std::vector<std::filesystem::path> presets;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_train: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--warmup")
      opt.warmup = std::stoi(next());
    else if (a == "--steps")
      opt.steps = std::stoi(next());
    else if (a == "--profile")
      opt.profile = 2;
    else if (a == "--seed")
      opt.seed = std::stoull(next());
    else if (a == "-h" || a == "--help")
      return usage();
    else if (!a.empty() && a[0] == '-')
      return usage();
    else
      presets.emplace_back(a);
  }
  if (presets.empty() || opt.steps < 1 || opt.warmup < 1) return usage();
  try {
    for (const auto& p : presets) load_run_config(p);  // every config checked before the GPU work
    cudaDeviceProp prop{};
    cuda_check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    std::printf("device: %s, %d SMs; MFU against %.1f TFLOP/s (H100 SXM dense bf16)\n", prop.name,
                prop.multiProcessorCount, kPeakFlops / 1e12);
    std::vector<Result> results;
    for (const auto& p : presets) results.push_back(run_preset(p, opt));

    std::printf("\n%-20s %-8s %12s %12s %10s %10s %11s %7s %9s\n", "preset", "attn", "params",
                "tok/step", "ms/step", "tok/s", "GFLOP/tok", "MFU", "loss");
    for (const auto& r : results) {
      std::printf("%-20s %-8s %12lld %12.0f %10.2f %10.0f %11.4f %6.1f%% %9.4f\n", r.name.c_str(),
                  attention_kind_name(r.kind), static_cast<long long>(r.params), r.tokens_per_step,
                  r.ms_median, r.tokens_per_s, r.flops.per_token / 1e9, 100.0 * r.mfu, r.last_loss);
    }
    const Result* base = find_kind(results, AttentionKind::softmax);
    if (base) {
      for (AttentionKind k : {AttentionKind::diff_v1, AttentionKind::diff_v2}) {
        const Result* r = find_kind(results, k);
        if (!r) continue;
        const double ratio =
            (r->ms_median / r->tokens_per_step) / (base->ms_median / base->tokens_per_step);
        std::printf("%s / softmax time per token: %.3f", attention_kind_name(k), ratio);
        if (k == AttentionKind::diff_v1)
          std::printf("  (bound 1.15: %s)", ratio <= 1.15 ? "holds" : "EXCEEDED");
        std::printf("\n");
      }
    }
    for (const auto& r : results) {
      std::printf("RESULT,ours,%s,%s,%.1f,%.4f,%.5f,%lld,%.6e,%.4f,%.4f\n", r.name.c_str(),
                  attention_kind_name(r.kind), r.tokens_per_s, r.ms_median, r.mfu,
                  static_cast<long long>(r.params), r.flops.per_token, r.ms_mean, r.ms_min);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
