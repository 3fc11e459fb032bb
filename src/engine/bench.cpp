// The engine benchmark (see bench.h): copy bandwidth, the (batch, context) grid of prefill and
// decode timings, byte counts of a decode step, and the table / JSON forms of the rows.
#include "difftx/engine/bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <unordered_set>

#include "difftx/engine/engine.h"
#include "difftx/model/model.h"
#include "difftx/model/paged_forward.h"
#include "difftx/model/params.h"

namespace difftx::engine {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::vector<std::int32_t> random_prompt(int n, int vocab, std::mt19937_64& rng) {
  std::vector<std::int32_t> p(static_cast<std::size_t>(n));
  // ids from 3 up: clear of the special pieces (pad, bos, eos) of difftx tokenizers
  for (auto& id : p) id = 3 + static_cast<std::int32_t>(rng() % std::uint64_t(vocab - 3));
  return p;
}

}  // namespace

int bench_prefill_steps_bound(int batch, int context, const BenchOptions& o) {
  const std::int64_t per_step = std::max(1, o.max_step_tokens - batch);
  const std::int64_t tokens = std::int64_t(batch) * context;
  const std::int64_t by_chunk =
      (context + std::max(1, o.prefill_chunk) - 1) / std::max(1, o.prefill_chunk);
  return static_cast<int>(std::max((tokens + per_step - 1) / per_step, by_chunk) + batch);
}

std::int64_t decode_weight_bytes(const ModelConfig& c, DType act_dtype) {
  const std::int64_t E = c.d_model, F = c.ffn_dim;
  std::int64_t per_layer =
      E * (c.q_dim() + c.k_dim() + c.v_dim()) + std::int64_t(c.attn_out_dim()) * E + 3 * E * F;
  if (c.attention == AttentionKind::diff_v2) per_layer += std::int64_t(c.n_heads) * E;
  const std::int64_t head = std::int64_t(c.vocab_size) * E;
  return (per_layer * c.n_layers + head) * static_cast<std::int64_t>(dtype_size(act_dtype));
}

std::int64_t kv_bytes_per_token(const ModelConfig& c, DType act_dtype) {
  return std::int64_t(c.n_layers) * (c.k_dim() + c.v_dim()) *
         static_cast<std::int64_t>(dtype_size(act_dtype));
}

double measure_copy_bandwidth(Backend& backend) {
  const bool gpu = backend.device() != Device::cpu;
  const std::int64_t bytes = gpu ? std::int64_t(2) << 30 : std::int64_t(256) << 20;
  Tensor a = Tensor::empty({bytes / 4}, DType::f32, backend.device());
  Tensor b = Tensor::empty({bytes / 4}, DType::f32, backend.device());
  backend.fill(a, 1.0);
  backend.synchronize();
  b.copy_from(a);  // warm-up
  const int reps = gpu ? 10 : 3;
  const auto t0 = Clock::now();
  for (int i = 0; i < reps; ++i) (i % 2 ? a : b).copy_from(i % 2 ? b : a);
  backend.synchronize();
  const double s = seconds_since(t0);
  return 2.0 * double(bytes) * reps / s;  // read + write
}

std::vector<BenchRow> run_engine_bench(Model& model, const std::string& label,
                                       const BenchOptions& o, double copy_bandwidth,
                                       const std::function<void(const std::string&)>& progress) {
  const ModelConfig& c = model.config();
  Backend& backend = model.backend();
  std::int64_t params = 0;
  for (std::size_t i = 0; i < model.params().size(); ++i)
    params += model.params().tensor(i).numel();
  const std::int64_t weight_bytes = decode_weight_bytes(c, backend.act_dtype());
  const std::int64_t kv_token = kv_bytes_per_token(c, backend.act_dtype());
  std::vector<BenchRow> rows;
  std::mt19937_64 rng(1234);
  {
    // Warm-up (not timed): loads the kernels' modules, fills cuBLASLt's algorithm cache.
    EngineOptions eo;
    eo.max_batch = 8;
    eo.block_size = o.block_size;
    eo.prefill_chunk = o.prefill_chunk;
    eo.max_step_tokens = o.max_step_tokens;
    eo.cuda_graphs = o.cuda_graphs;
    eo.lookahead = o.lookahead;
    eo.kv_memory_bytes = std::int64_t(8) * (std::min(c.max_seq_len, 160) / o.block_size + 2) *
                         o.block_size * kv_token;
    Engine engine(model, eo);
    const int prompt = std::clamp(c.max_seq_len - 10, 1, 100);
    for (int b = 0; b < 8; ++b) {
      Request r;
      r.prompt = random_prompt(prompt, c.vocab_size, rng);
      r.max_new_tokens = std::clamp(c.max_seq_len - prompt - 1, 1, 8);
      r.sampling.temperature = 0;
      r.stop_at_eos = false;
      engine.add(std::move(r));
    }
    while (engine.has_work()) engine.step();
  }
  for (int batch : o.batches) {
    for (int context : o.contexts) {
      BenchRow base;
      base.model = label;
      base.backend = backend.name();
      base.params = params;
      base.batch = batch;
      base.context = context;
      const int steps = o.warmup_steps + o.gen_tokens;
      // tokens a sequence generates, at most: while other prompts are still prefilled, the first
      // token, the decode steps, one more (still running when the timing ends)
      const int generate = bench_prefill_steps_bound(batch, context, o) + steps + 2;
      const int total = context + generate;
      auto skip = [&](std::string why) {
        BenchRow r = base;
        r.test = fmt::format("pp{}+tg{}", context, o.gen_tokens);
        r.note = std::move(why);
        if (progress)
          progress(fmt::format("batch {} context {}: skipped ({})", batch, context, r.note));
        rows.push_back(r);
      };
      if (total > c.max_seq_len) {
        skip(fmt::format("context + {} tokens exceeds the model's max_seq_len {}", generate,
                         c.max_seq_len));
        continue;
      }
      // Blocks for every sequence's whole length, plus the scheduler's 1% admission watermark.
      const std::int64_t blocks_per_seq = (total + o.block_size - 1) / o.block_size;
      const std::int64_t blocks = std::int64_t(batch) * blocks_per_seq;
      const std::int64_t kv_bytes = (blocks + blocks / 50 + 2) * o.block_size * kv_token;
      // A free-memory reading under 1 GiB on a device is not trusted (some virtualised GPUs
      // report none); the allocation itself then decides.
      const std::int64_t free = backend.free_device_memory();
      if (free >= (std::int64_t(1) << 30) && double(kv_bytes) > o.memory_fraction * double(free)) {
        skip(fmt::format("KV cache of {:.1f} GiB exceeds {:.0f}% of the {:.1f} GiB free",
                         double(kv_bytes) / double(1 << 30), 100 * o.memory_fraction,
                         double(free) / double(1 << 30)));
        continue;
      }
      EngineOptions eo;
      eo.max_batch = batch;
      eo.block_size = o.block_size;
      eo.prefill_chunk = o.prefill_chunk;
      eo.max_step_tokens = std::max(o.max_step_tokens, batch);
      eo.cuda_graphs = o.cuda_graphs;
      eo.lookahead = o.lookahead;
      eo.kv_memory_bytes = kv_bytes;
      try {
        Engine engine(model, eo);
        const auto t0 = Clock::now();
        for (int b = 0; b < batch; ++b) {
          Request r;
          r.prompt = random_prompt(context, c.vocab_size, rng);
          r.max_new_tokens = generate;  // still running when the timing ends
          r.sampling.temperature = 0;
          r.stop_at_eos = false;
          engine.add(std::move(r));
        }
        // Prefill: until every sequence has its first token. (Counted per sequence: sequences
        // whose prompt is done decode while long prompts of others are still being prefilled,
        // and counting their tokens ended this loop early, so that the timed steps of batch 32
        // at context 32K were mixed prefill steps of fewer sequences.)
        std::unordered_set<std::uint64_t> started;
        while (static_cast<int>(started.size()) < batch) {
          for (const TokenEvent& e : engine.step()) {
            if (e.token >= 0) started.insert(e.sequence);
          }
        }
        const double prefill_s = seconds_since(t0);
        for (int s = 0; s < o.warmup_steps; ++s) engine.step();
        const EngineStats before = engine.stats();
        const auto t1 = Clock::now();
        for (int s = 0; s < o.gen_tokens; ++s) engine.step();
        const double decode_s = seconds_since(t1);
        const EngineStats after = engine.stats();
        BenchRow pp = base;
        pp.test = fmt::format("pp{}", context);
        pp.tokens_per_s = double(batch) * context / prefill_s;
        rows.push_back(pp);
        BenchRow tg = base;
        tg.test = fmt::format("tg{}", o.gen_tokens);
        const double generated = double(after.generated_tokens - before.generated_tokens);
        tg.tokens_per_s = generated / decode_s;
        tg.ms_per_step = 1e3 * decode_s / o.gen_tokens;
        // KV read per step: each sequence's whole cache, averaged over the timed steps.
        const double mean_ctx = double(before.live_tokens + after.live_tokens) / 2.0;
        tg.bytes_per_step = double(weight_bytes) + mean_ctx * double(kv_token);
        tg.bandwidth = tg.bytes_per_step / (decode_s / o.gen_tokens);
        tg.share_spec = tg.bandwidth / kSpecBandwidth;
        tg.share_copy = copy_bandwidth > 0 ? tg.bandwidth / copy_bandwidth : 0;
        tg.kv_ratio = after.live_tokens > 0
                          ? double(after.kv_blocks_used) * o.block_size / double(after.live_tokens)
                          : 0;
        if (generated < double(batch) * o.gen_tokens) {  // a guard: the figures would be wrong
          tg.note = fmt::format("not valid: the timed steps decoded {:.1f} of {} sequences",
                                generated / o.gen_tokens, batch);
        }
        rows.push_back(tg);
        if (progress) {
          progress(
              fmt::format("batch {} context {}: pp {:.0f} t/s, tg {:.1f} t/s, {:.3f} ms/step, "
                          "{:.0f}% of the copy bandwidth",
                          batch, context, pp.tokens_per_s, tg.tokens_per_s, tg.ms_per_step,
                          100 * tg.share_copy));
        }
      } catch (const Error& e) {
        skip(e.what());
      }
    }
  }
  return rows;
}

std::string bench_table(const std::vector<BenchRow>& rows) {
  std::string out =
      "| model | params | backend | batch | context | test | t/s | ms/step | GB/s | % of 4.8 TB/s "
      "| % of copy | KV held/live |\n"
      "| --- | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  for (const BenchRow& r : rows) {
    const std::string params = r.params > 0 ? fmt::format("{:.1f}M", double(r.params) / 1e6) : "";
    if (!r.note.empty()) {
      out += fmt::format("| {} | {} | {} | {} | {} | {} | {} | | | | | |\n", r.model, params,
                         r.backend, r.batch, r.context, r.test, r.note);
      continue;
    }
    const bool tg = r.ms_per_step > 0;
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {:.2f} | {} | {} | {} | {} | {} |\n",
                       r.model, params, r.backend, r.batch, r.context, r.test, r.tokens_per_s,
                       tg ? fmt::format("{:.3f}", r.ms_per_step) : "",
                       r.bandwidth > 0 ? fmt::format("{:.0f}", r.bandwidth / 1e9) : "",
                       r.share_spec > 0 ? fmt::format("{:.1f}", 100 * r.share_spec) : "",
                       r.share_copy > 0 ? fmt::format("{:.1f}", 100 * r.share_copy) : "",
                       r.kv_ratio > 0 ? fmt::format("{:.3f}", r.kv_ratio) : "");
  }
  return out;
}

nlohmann::json bench_json(const std::vector<BenchRow>& rows) {
  nlohmann::json a = nlohmann::json::array();
  for (const BenchRow& r : rows) {
    a.push_back({{"model", r.model},
                 {"backend", r.backend},
                 {"params", r.params},
                 {"batch", r.batch},
                 {"context", r.context},
                 {"test", r.test},
                 {"tokens_per_s", r.tokens_per_s},
                 {"ms_per_step", r.ms_per_step},
                 {"bytes_per_step", r.bytes_per_step},
                 {"bandwidth", r.bandwidth},
                 {"share_spec", r.share_spec},
                 {"share_copy", r.share_copy},
                 {"kv_ratio", r.kv_ratio},
                 {"note", r.note}});
  }
  return a;
}

BenchRow bench_row_from_json(const nlohmann::json& j) {
  BenchRow r;
  r.model = j.value("model", std::string());
  r.backend = j.value("backend", std::string());
  r.params = j.value("params", std::int64_t(0));
  r.batch = j.value("batch", 0);
  r.context = j.value("context", 0);
  r.test = j.value("test", std::string());
  r.tokens_per_s = j.value("tokens_per_s", 0.0);
  r.ms_per_step = j.value("ms_per_step", 0.0);
  r.note = j.value("note", std::string());
  return r;
}

}  // namespace difftx::engine
