// The engine benchmark behind `difftx bench`: prompt processing (prefill) and generation
// (decode) throughput of the Engine for a grid of batch sizes and context lengths, time per
// decode step, and the share of the memory-bandwidth limit the decode reaches: (bytes of the
// weights + the KV cache read per step) / step time, against the H200's 4.8 TB/s and against a
// device-to-device copy measured in the same run. Rows print as a llama-bench style table.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "difftx/model/backend.h"
#include "difftx/model/config.h"

namespace difftx {
class Model;
}

namespace difftx::engine {

inline constexpr double kSpecBandwidth = 4.8e12;  // H200 HBM3e, bytes/s (vendor datasheet)

struct BenchOptions {
  std::vector<int> batches{1, 8, 32, 128};
  std::vector<int> contexts{512, 4096, 32768};
  int gen_tokens = 64;       // decode steps timed per case
  int warmup_steps = 2;      // decode steps run before the timed ones (graph capture)
  int prefill_chunk = 2048;  // engine options for the run
  int max_step_tokens = 8192;
  int block_size = 16;
  bool cuda_graphs = true;
  bool lookahead = true;          // EngineOptions::lookahead
  double memory_fraction = 0.85;  // of free device memory a case may use for its KV cache
};

struct BenchRow {
  std::string model;    // label, e.g. "diff_v1 E768 L12"
  std::string backend;  // e.g. "cuda-bf16", "torch eager"
  std::int64_t params = 0;
  int batch = 0;
  int context = 0;
  std::string test;           // "pp512", "tg64"
  double tokens_per_s = 0;    // prompt tokens/s (pp) or generated tokens/s (tg)
  double ms_per_step = 0;     // tg: one decode step (one token for every sequence)
  double bytes_per_step = 0;  // tg: weights + KV read per step
  double bandwidth = 0;       // tg: bytes_per_step / step time (bytes/s)
  double share_spec = 0;      // bandwidth / kSpecBandwidth
  double share_copy = 0;      // bandwidth / measured copy bandwidth
  double kv_ratio = 0;        // tg: KV blocks held / blocks the live tokens need (>= 1)
  std::string note;           // why a case was skipped, or an error
};

// Steps a case's prompts take to prefill, at most: the engine processes up to max_step_tokens
// tokens a step (decode rows first), each prompt up to prefill_chunk of them. Sequences whose
// prompt is done decode meanwhile, so every request may generate this many tokens more than the
// timed steps need, and its KV blocks are budgeted for them.
int bench_prefill_steps_bound(int batch, int context, const BenchOptions& o);

// Bytes a decode step reads at least: every weight matrix once (the output head included) in
// the activation dtype, and every cached token's K and V in every layer.
std::int64_t decode_weight_bytes(const ModelConfig& c, DType act_dtype);
std::int64_t kv_bytes_per_token(const ModelConfig& c, DType act_dtype);

// Device-to-device copy bandwidth (bytes read + written per second) of the backend's memory,
// over a 2 GiB buffer (the CPU: 256 MiB) copied several times.
double measure_copy_bandwidth(Backend& backend);

// Runs every (batch, context) case of `options` on `model` (random prompts, greedy decoding)
// and returns its pp and tg rows. Cases whose KV cache does not fit, or whose context plus the
// generated tokens exceed the model's max_seq_len, come back as one row with a note. `progress`
// receives a line per case.
std::vector<BenchRow> run_engine_bench(Model& model, const std::string& label,
                                       const BenchOptions& options, double copy_bandwidth,
                                       const std::function<void(const std::string&)>& progress);

// The rows as a Markdown table (llama-bench's layout), and as JSON.
std::string bench_table(const std::vector<BenchRow>& rows);
nlohmann::json bench_json(const std::vector<BenchRow>& rows);
BenchRow bench_row_from_json(const nlohmann::json& j);

}  // namespace difftx::engine
