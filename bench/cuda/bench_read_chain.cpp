// The floor of a batch-1 decode step's weight reads, by kernel structure. The bytes one decode
// step of a model config reads (per layer: the QKV projection, DIFF V2's W_lambda, W_o, gate and
// up, W_down; then the output head) are streamed with no arithmetic, in four ways, each captured
// as one CUDA graph per step and replayed:
//   one-kernel  one kernel over all of them (one launch: the ceiling of a step's reads);
//   chain-pdl   one kernel per weight in the step's order, as the engine launches its GEMVs
//               (programmatic dependent launch, each kernel loading its first batch before it
//               waits on the one before, then reading a token that kernel wrote);
//   chain       the same without PDL;
//   persistent  one cooperative kernel that passes a grid barrier between weights, loading the
//               next weight's first batch before the barrier;
//   ring        one cooperative kernel, a block per multiprocessor, whose producer warp streams
//               the block's slice of every weight into a ring of shared memory (bulk copies)
//               without waiting for any dependency, while its consumer warps follow the chain:
//               wait for every block to finish the stage before, read back the 4 KB vector it
//               wrote (a GEMV input's round trip), fold their pieces, write, arrive (sm_90 only;
//               read_ring_kernel.cu). Its time is about max(the reads at full rate, the chain's
//               latency): the floor of a megakernel with whole-grid dependencies between ops;
//   ring-lsu    the same ring filled by the consumers' own cp.async loads, 12 pieces ahead,
//               instead of a producer warp's bulk copies (--ring-kb does not apply).
// With --stand-in, each layer gets a stage of no bytes where the attention runs (a kernel that
// waits and passes the token on; a barrier in the persistent kernel), for the latency of one more
// dependent launch. --empty leaves only the structure (no bytes read). It says how near the copy
// bandwidth (measured in the same run) a step built of one kernel per op can come at best, and what
// a persistent kernel gains on the reads alone.
//
//   bench_read_chain --config bench/engine/diff-1.4b.json [--stand-in] [--json out.json]
#include <cuda_runtime.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "difftx/core/atomic_file.h"
#include "difftx/engine/bench.h"
#include "difftx/model/config.h"
#include "difftx/runtime/backend_factory.h"
#include "read_chain_kernels.h"

namespace {

using i64 = std::int64_t;
using difftx::bench::ReadStage;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "bench_read_chain: %s: %s\n", what, cudaGetErrorString(status));
    std::exit(1);
  }
}

struct Layout {
  std::vector<std::string> names;
  std::vector<i64> bytes;  // per stage; 0 for a stand-in
};

// The stages of one decode step of `c` (bf16 weights), in the engine's order.
Layout step_layout(const difftx::ModelConfig& c, bool stand_in) {
  Layout l;
  const i64 E = c.d_model, F = c.ffn_dim;
  auto add = [&](std::string name, i64 elements) {
    l.names.push_back(std::move(name));
    l.bytes.push_back(elements * 2);
  };
  for (int layer = 0; layer < c.n_layers; ++layer) {
    add("qkv", E * (c.q_dim() + c.k_dim() + c.v_dim()));
    if (c.attention == difftx::AttentionKind::diff_v2) add("w_lambda", i64(c.n_heads) * E);
    if (stand_in) add("attention", 0);
    add("w_o", i64(c.attn_out_dim()) * E);
    add("gate_up", 2 * E * F);
    add("w_down", F * E);
  }
  add("head", i64(c.vocab_size) * E);
  return l;
}

// Milliseconds per replay of `graph`: the median of `rounds` timings of `reps` replays each.
double time_graph(cudaGraphExec_t graph, cudaStream_t stream, int reps, int rounds) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  for (int i = 0; i < 5; ++i) check(cudaGraphLaunch(graph, stream), "graph launch (warm-up)");
  std::vector<double> ms;
  for (int r = 0; r < rounds; ++r) {
    check(cudaEventRecord(a, stream), "event record");
    for (int i = 0; i < reps; ++i) check(cudaGraphLaunch(graph, stream), "graph launch");
    check(cudaEventRecord(b, stream), "event record");
    check(cudaEventSynchronize(b), "event sync");
    float m = 0;
    check(cudaEventElapsedTime(&m, a, b), "elapsed");
    ms.push_back(double(m) / reps);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"The floor of a batch-1 decode step's weight reads, by kernel structure"};
  std::string config_path, json_path;
  bool stand_in = false, ahead = false, empty = false, early_stand_in = false;
  bool stand_in_plain = false, after_stand_in_plain = false;
  int reps = 20, rounds = 7, blocks_per_sm = 2, smem_kb = 0, ring_kb = 192, piece_kb = 16;
  app.add_option("--config", config_path, "model config (JSON) whose decode step is read")
      ->required()
      ->check(CLI::ExistingFile);
  app.add_flag("--stand-in", stand_in, "a stage of no bytes per layer where the attention runs");
  app.add_flag("--early-stand-in", early_stand_in,
               "the stand-ins let the next kernel launch before they wait (chain-pdl)");
  app.add_flag("--stand-in-plain", stand_in_plain,
               "chain-pdl: the stand-ins are launched without PDL (after the kernel before ends)");
  app.add_flag("--after-stand-in-plain", after_stand_in_plain,
               "chain-pdl: the kernel after each stand-in is launched without PDL");
  app.add_flag("--empty", empty,
               "stages of no bytes (the same launches and barriers): the structure's own cost");
  app.add_flag("--ahead", ahead, "each thread loads its next batch before it uses the current one");
  app.add_option("--reps", reps, "graph replays per timing")->check(CLI::Range(1, 10000));
  app.add_option("--rounds", rounds, "timings; the median is reported")->check(CLI::Range(1, 101));
  app.add_option("--blocks-per-sm", blocks_per_sm, "grid cap per multiprocessor (the GEMV's: 2)")
      ->check(CLI::Range(1, 2));
  app.add_option("--smem-kb", smem_kb,
                 "shared memory per block of the one-kernel and chain modes (unused: it limits the "
                 "blocks of a kernel and of the next one that fit on a multiprocessor, as the "
                 "decode GEMV's registers do)")
      ->check(CLI::Range(0, 200));
  app.add_option("--ring-kb", ring_kb, "ring mode: shared memory per block for the streamed pieces")
      ->check(CLI::Range(32, 224));
  app.add_option("--piece-kb", piece_kb,
                 "ring modes: KB per copy (the ring holds ring/piece pieces; ring-lsu 12)")
      ->check(CLI::Range(1, 64));
  app.add_option("--json", json_path, "also write the rows to this JSON file");
  CLI11_PARSE(app, argc, argv);

  difftx::ModelConfig config;
  try {
    config = difftx::load_model_config(config_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_read_chain: %s\n", e.what());
    return 1;
  }
  int n_dev = 0;
  if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0) {
    std::fprintf(stderr, "bench_read_chain: no CUDA device\n");
    return 1;
  }
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "properties");
  const int cap = prop.multiProcessorCount * blocks_per_sm;
  const std::size_t smem = std::size_t(smem_kb) << 10;
  check(difftx::bench::allow_read_stage_smem(smem), "shared memory per block");

  const Layout layout = step_layout(config, stand_in);
  i64 total = 0;
  for (i64 b : layout.bytes) total += (b + 15) / 16 * 16;  // each stage 16-byte aligned
  const i64 read = empty ? 0 : total;                      // bytes read per step
  char* weights = nullptr;
  check(cudaMalloc(&weights, std::size_t(total)), "cudaMalloc (weights)");
  check(cudaMemset(weights, 0x3c, std::size_t(total)), "memset (weights)");
  std::vector<ReadStage> stages;
  for (i64 off = 0; i64 b : layout.bytes) {
    stages.push_back({weights + off, empty ? 0 : (b + 15) / 16});
    off += (b + 15) / 16 * 16;
  }
  ReadStage* stages_dev = nullptr;
  unsigned *tokens = nullptr, *sink = nullptr;
  check(cudaMalloc(&stages_dev, stages.size() * sizeof(ReadStage)), "cudaMalloc");
  check(cudaMemcpy(stages_dev, stages.data(), stages.size() * sizeof(ReadStage),
                   cudaMemcpyHostToDevice),
        "copy stages");
  check(cudaMalloc(&tokens, (stages.size() + 1) * sizeof(unsigned)), "cudaMalloc");
  check(cudaMemset(tokens, 0, (stages.size() + 1) * sizeof(unsigned)), "memset");
  const std::size_t sink_words = std::max(
      std::size_t(cap) * difftx::bench::kReadThreads,
      std::size_t(prop.multiProcessorCount) * (difftx::bench::kRingConsumerWarps + 1) * 32);
  check(cudaMalloc(&sink, sink_words * sizeof(unsigned)), "cudaMalloc");

  // ring mode: a counter per stage and the activation vectors (two, alternating by stage)
  const int ring_slots = ring_kb / piece_kb;
  if (ring_slots < 2 || ring_slots > 32) {
    std::fprintf(stderr, "bench_read_chain: --ring-kb / --piece-kb gives %d pieces; use 2 to 32\n",
                 ring_slots);
    return 1;
  }
  const bool ring_ok = prop.major >= 9;
  unsigned* ring_arrivals = nullptr;
  std::uint32_t* activations = nullptr;
  check(cudaMalloc(&ring_arrivals, stages.size() * sizeof(unsigned)), "cudaMalloc");
  check(cudaMalloc(&activations, 2 * difftx::bench::kRingActivationWords * sizeof(std::uint32_t)),
        "cudaMalloc");
  check(cudaMemset(activations, 0, 2 * difftx::bench::kRingActivationWords * sizeof(std::uint32_t)),
        "memset");
  if (ring_ok)
    check(difftx::bench::allow_read_ring_smem(std::size_t(ring_slots) *
                                              (std::size_t(piece_kb) << 10)),
          "ring shared memory");

  cudaStream_t stream;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "stream");
  // device-to-device copy bandwidth (read + written bytes per second), as `difftx bench` has it
  double copy = 0;
  try {
    copy = difftx::engine::measure_copy_bandwidth(*difftx::make_backend("cuda"));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_read_chain: %s\n", e.what());
    return 1;
  }

  const int per_sm = difftx::bench::read_persistent_blocks_per_sm(ahead);
  if (per_sm < 1) check(cudaErrorInvalidConfiguration, "persistent kernel occupancy");
  const unsigned persistent_blocks =
      unsigned(std::min(per_sm, blocks_per_sm) * prop.multiProcessorCount);

  struct Mode {
    const char* name;
    std::function<void()> record;
  };
  std::vector<Mode> modes = {
      {"one-kernel",
       [&] {
         check(difftx::bench::launch_read_stage({weights, read / 16}, cap, false, ahead, false,
                                                smem, stream, tokens, tokens + 1, sink),
               "one-kernel launch");
       }},
      {"chain-pdl",
       [&] {
         for (std::size_t s = 0; s < stages.size(); ++s) {
           const bool is_stand_in = layout.bytes[s] == 0;
           const bool after = s > 0 && layout.bytes[s - 1] == 0;
           const bool pdl = !(is_stand_in && stand_in_plain) && !(after && after_stand_in_plain);
           check(difftx::bench::launch_read_stage(stages[s], cap, pdl, ahead,
                                                  early_stand_in && is_stand_in, smem, stream,
                                                  tokens + s, tokens + s + 1, sink),
                 "stage launch");
         }
       }},
      {"chain",
       [&] {
         for (std::size_t s = 0; s < stages.size(); ++s)
           check(difftx::bench::launch_read_stage(stages[s], cap, false, ahead, false, smem, stream,
                                                  tokens + s, tokens + s + 1, sink),
                 "stage launch");
       }},
      {"persistent",
       [&] {
         check(cudaMemsetAsync(tokens, 0, sizeof(unsigned), stream), "memset (arrivals)");
         check(difftx::bench::launch_read_persistent(
                   stages_dev, int(stages.size()), persistent_blocks, ahead, stream, tokens, sink),
               "persistent launch");
       }},
  };
  if (ring_ok) {
    modes.push_back(
        {"ring", [&] {
           check(cudaMemsetAsync(ring_arrivals, 0, stages.size() * sizeof(unsigned), stream),
                 "memset (ring arrivals)");
           check(difftx::bench::launch_read_ring(
                     stages_dev, int(stages.size()), unsigned(prop.multiProcessorCount), ring_slots,
                     piece_kb << 10, stream, ring_arrivals, activations, sink),
                 "ring launch");
         }});
  } else {
    std::printf("ring mode skipped: it needs sm_90 (bulk copies)\n");
  }
  const std::size_t lsu_smem =
      std::size_t(difftx::bench::read_ring_lsu_pieces()) * (std::size_t(piece_kb) << 10);
  if (lsu_smem <= std::size_t(prop.sharedMemPerBlockOptin)) {
    check(difftx::bench::allow_read_ring_lsu_smem(lsu_smem), "ring-lsu shared memory");
    modes.push_back(
        {"ring-lsu", [&] {
           check(cudaMemsetAsync(ring_arrivals, 0, stages.size() * sizeof(unsigned), stream),
                 "memset (ring arrivals)");
           check(difftx::bench::launch_read_ring_lsu(
                     stages_dev, int(stages.size()), unsigned(prop.multiProcessorCount),
                     piece_kb << 10, stream, ring_arrivals, activations, sink),
                 "ring-lsu launch");
         }});
  } else {
    std::printf("ring-lsu mode skipped: %d pieces of %d KB exceed a block's shared memory\n",
                difftx::bench::read_ring_lsu_pieces(), piece_kb);
  }

  std::printf("device: %s, %d SMs; config %s: %d layers, %zu stages, %.1f MiB read per step%s%s\n",
              prop.name, prop.multiProcessorCount, config_path.c_str(), config.n_layers,
              stages.size(), double(read) / (1 << 20), stand_in ? " (attention stand-ins)" : "",
              ahead ? "; loads issued a batch ahead" : "");
  if (early_stand_in) std::printf("the stand-ins let the next kernel launch before they wait\n");
  if (stand_in_plain) std::printf("chain-pdl: the stand-ins are launched without PDL\n");
  if (after_stand_in_plain)
    std::printf("chain-pdl: the kernels after the stand-ins are launched without PDL\n");
  if (smem_kb > 0) std::printf("%d KB of shared memory per block of the stage kernels\n", smem_kb);
  std::printf("copy bandwidth (read + write): %.0f GB/s\n\n", copy * 1e-9);
  std::printf(
      "| mode | ms per step | GB/s | share of copy bandwidth | us per stage over one-kernel |\n");
  std::printf("|---|---:|---:|---:|---:|\n");
  nlohmann::json rows = nlohmann::json::array();
  double one_kernel_ms = 0;
  for (const Mode& m : modes) {
    check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin capture");
    m.record();
    cudaGraph_t graph;
    check(cudaStreamEndCapture(stream, &graph), "end capture");
    cudaGraphExec_t exec;
    check(cudaGraphInstantiate(&exec, graph, 0), "instantiate");
    const double ms = time_graph(exec, stream, reps, rounds);
    check(cudaGetLastError(), m.name);
    if (one_kernel_ms == 0) one_kernel_ms = ms;
    const double bw = double(read) / (ms * 1e-3);
    const double per_stage_us = (ms - one_kernel_ms) * 1e3 / double(stages.size());
    std::printf("| %s | %.4f | %.0f | %.1f%% | %.2f |\n", m.name, ms, bw * 1e-9, 100.0 * bw / copy,
                per_stage_us);
    rows.push_back({{"mode", m.name},
                    {"ms_per_step", ms},
                    {"bytes_per_step", read},
                    {"gb_per_s", bw * 1e-9},
                    {"share_copy", bw / copy},
                    {"us_per_stage_over_one_kernel", per_stage_us}});
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
  }
  std::fflush(stdout);
  if (!json_path.empty()) {
    const nlohmann::json doc = {{"device", prop.name},
                                {"config", config_path},
                                {"stages", stages.size()},
                                {"stand_in", stand_in},
                                {"ahead", ahead},
                                {"empty", empty},
                                {"early_stand_in", early_stand_in},
                                {"stand_in_plain", stand_in_plain},
                                {"after_stand_in_plain", after_stand_in_plain},
                                {"smem_kb", smem_kb},
                                {"blocks_per_sm", blocks_per_sm},
                                {"persistent_blocks", persistent_blocks},
                                {"ring_kb", ring_kb},
                                {"piece_kb", piece_kb},
                                {"copy_bandwidth", copy},
                                {"reps", reps},
                                {"rounds", rounds},
                                {"rows", rows}};
    difftx::write_file_atomic(json_path, doc.dump(2) + "\n");
  }
  return 0;
}
