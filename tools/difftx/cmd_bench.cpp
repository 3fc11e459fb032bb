// `difftx bench`: the inference engine's throughput (prompt processing and generation for a
// grid of batch sizes and contexts), time per decode step and share of the memory-bandwidth
// limit, for a checkpoint or a config with random weights (optionally its matched softmax
// baseline too), beside Hugging Face transformers' generate on the same weights (exported with
// `export hf`, run by bench/engine/hf_generate.py). One llama-bench style table on stdout.
#include <fmt/core.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "command_registry.h"
#include "difftx/core/atomic_file.h"
#include "difftx/engine/bench.h"
#include "difftx/hf/hf_export.h"
#include "difftx/model/checkpoint.h"
#include "difftx/model/model.h"
#include "difftx/runtime/backend_factory.h"
#include "difftx/runtime/checkpoint_store.h"

namespace difftx::cli {
namespace {

struct BenchArgs {
  std::string config;
  std::string checkpoint;
  std::string device = "cuda";
  std::vector<int> batches{1, 8, 32, 128};
  std::vector<int> contexts{512, 4096, 32768};
  int gen = 64;
  bool baseline = false;
  bool no_graphs = false;
  bool no_lookahead = false;
  std::uint64_t seed = 1;
  bool hf = false;
  std::vector<int> hf_batches{1, 8};
  std::vector<int> hf_contexts{512};
  int hf_gen = 32;
  std::string hf_script = "bench/engine/hf_generate.py";
  std::string python = "python3";
  std::string work;
  std::string json;
};

std::string label_of(const ModelConfig& c) {
  return fmt::format("{} E{} L{} h{}", attention_kind_name(c.attention), c.d_model, c.n_layers,
                     c.n_heads);
}

// Parameters on the backend's device and dtype from host f32 ones.
ParamSet to_backend(const ParamSet& host, Backend& backend) {
  ParamSet params;
  for (std::size_t i = 0; i < host.size(); ++i) {
    Tensor t = host.tensor(i).to_dtype(backend.param_dtype());
    params.add(host.name(i), backend.device() == Device::cpu ? t : t.to(backend.device()));
  }
  return params;
}

// Runs the HF generate script on an exported model; returns its rows (or one row with the
// error when it fails).
std::vector<engine::BenchRow> run_hf(const BenchArgs& a, const std::filesystem::path& hf_dir,
                                     const std::string& label) {
  const std::filesystem::path out = hf_dir.parent_path() / (hf_dir.filename().string() + ".json");
  auto join = [](const std::vector<int>& v) {
    std::string s;
    for (int x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
    return s;
  };
  const std::string cmd = fmt::format(
      "'{}' '{}' --model '{}' --batch {} --context {} --gen {} --label '{}' --json '{}' 1>&2",
      a.python, a.hf_script, hf_dir.string(), join(a.hf_batches), join(a.hf_contexts), a.hf_gen,
      label, out.string());
  fmt::print(stderr, "[bench] HF transformers: {}\n", cmd);
  std::fflush(stderr);
  const int status = std::system(cmd.c_str());
  std::vector<engine::BenchRow> rows;
  std::ifstream in(out);
  if (status != 0 || !in) {
    engine::BenchRow r;
    r.model = label;
    r.backend = "HF transformers";
    r.note = fmt::format("hf_generate.py failed (exit status {}); see its output above", status);
    rows.push_back(r);
    return rows;
  }
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (!j.is_array()) fail("{}: not the JSON array hf_generate.py writes", out.string());
  for (const auto& e : j) rows.push_back(engine::bench_row_from_json(e));
  return rows;
}

const CommandRegistration reg{
    45, [](CLI::App& app) {
      auto a = std::make_shared<BenchArgs>();
      auto* cmd = app.add_subcommand(
          "bench",
          "Inference throughput and memory-bandwidth share of the engine (and HF transformers)");
      auto* cfg =
          cmd->add_option("--config", a->config,
                          "A model or run config: random weights (max_seq_len raised to fit "
                          "the contexts)");
      auto* ck = cmd->add_option("--checkpoint", a->checkpoint,
                                 "A checkpoint folder, or a run folder (its newest checkpoint)");
      cfg->excludes(ck);
      cmd->add_option("--device", a->device, "cpu or cuda")->capture_default_str();
      cmd->add_option("--batch", a->batches, "Batch sizes (sequences decoded together)")
          ->delimiter(',')
          ->capture_default_str();
      cmd->add_option("--context", a->contexts, "Prompt lengths in tokens")
          ->delimiter(',')
          ->capture_default_str();
      cmd->add_option("--gen", a->gen, "Decode steps timed per case")->capture_default_str();
      cmd->add_flag("--baseline", a->baseline,
                    "Also the parameter-matched softmax baseline of a DIFF model (random weights)");
      cmd->add_flag("--no-graphs", a->no_graphs, "Decode without CUDA graphs");
      cmd->add_flag("--no-lookahead", a->no_lookahead,
                    "Wait for each decode step before queuing the next (the host's time "
                    "between steps shows)");
      cmd->add_option("--seed", a->seed, "Seed of the random weights and prompts")
          ->capture_default_str();
      cmd->add_flag("--hf", a->hf,
                    "Also HF transformers generate (bf16, static cache, eager and "
                    "torch.compile) on the same weights, exported with `export hf`");
      cmd->add_option("--hf-batch", a->hf_batches, "Batch sizes of the HF runs")
          ->delimiter(',')
          ->capture_default_str();
      cmd->add_option("--hf-context", a->hf_contexts, "Prompt lengths of the HF runs")
          ->delimiter(',')
          ->capture_default_str();
      cmd->add_option("--hf-gen", a->hf_gen, "Tokens each HF run generates")->capture_default_str();
      cmd->add_option("--hf-script", a->hf_script, "The HF benchmark script")
          ->capture_default_str();
      cmd->add_option("--python", a->python, "Python with torch and transformers")
          ->capture_default_str();
      cmd->add_option("--work", a->work,
                      "Folder for exported models (default: a temporary folder)");
      cmd->add_option("--json", a->json, "Also write the rows as JSON to this file");
      cmd->callback([a] {
        if (a->config.empty() == a->checkpoint.empty()) fail("give --config or --checkpoint (one)");
        auto positive = [](const std::vector<int>& v, const char* what) {
          if (v.empty()) fail("{} needs at least one value", what);
          for (int x : v) {
            if (x < 1 || x > (1 << 20)) fail("{} values must be in [1, 1048576], got {}", what, x);
          }
        };
        positive(a->batches, "--batch");
        positive(a->contexts, "--context");
        positive(a->hf_batches, "--hf-batch");
        positive(a->hf_contexts, "--hf-context");
        if (a->gen < 1 || a->gen > 100000) fail("--gen must be in [1, 100000], got {}", a->gen);
        if (a->hf_gen < 1 || a->hf_gen > 100000)
          fail("--hf-gen must be in [1, 100000], got {}", a->hf_gen);
        if (a->hf && !std::filesystem::exists(a->hf_script)) {
          fail(
              "--hf: the script '{}' does not exist (run from the repository root or pass "
              "--hf-script)",
              a->hf_script);
        }

        engine::BenchOptions opt;
        opt.batches = a->batches;
        opt.contexts = a->contexts;
        opt.gen_tokens = a->gen;
        opt.cuda_graphs = !a->no_graphs;
        opt.lookahead = !a->no_lookahead;

        // The models to run: (config, host f32 parameters, checkpoint folder or empty).
        struct Subject {
          ModelConfig config;
          ParamSet params;
          std::filesystem::path checkpoint;
        };
        std::vector<Subject> subjects;
        if (!a->checkpoint.empty()) {
          const std::filesystem::path dir = resolve_checkpoint(a->checkpoint);
          ModelCheckpoint loaded = load_model_checkpoint(dir);
          subjects.push_back({loaded.config, std::move(loaded.params), dir});
          if (a->baseline) fail("--baseline needs --config (the baseline gets random weights)");
        } else {
          ModelConfig c = load_model_config(a->config);
          // room for the longest context, the tokens generated while the batch's prompts are
          // prefilled and the timed steps
          int longest = 0;
          for (int x : a->contexts) {
            for (int b : a->batches) {
              longest = std::max(longest, x + engine::bench_prefill_steps_bound(b, x, opt));
            }
          }
          c.max_seq_len = std::max(c.max_seq_len, longest + a->gen + opt.warmup_steps + 8);
          c.validate(a->config);
          subjects.push_back(
              {c, ParamSet::initialised_parallel(c, a->seed, DType::f32, Device::cpu), {}});
          if (a->baseline) {
            if (c.attention == AttentionKind::softmax)
              fail("--baseline: the config is already softmax");
            ModelConfig b = matched_baseline(c);
            subjects.push_back(
                {b, ParamSet::initialised_parallel(b, a->seed + 1, DType::f32, Device::cpu), {}});
          }
        }

        auto backend = make_backend(a->device);
        const double copy_bw = engine::measure_copy_bandwidth(*backend);
        fmt::print(stderr, "[bench] {}: device-to-device copy {:.0f} GB/s (read + write)\n",
                   backend->name(), copy_bw / 1e9);
        std::vector<engine::BenchRow> rows;
        std::vector<double> tg_batch1;  // per subject: ms/step at the first batch and context
        for (Subject& s : subjects) {
          const std::string label = label_of(s.config);
          fmt::print(stderr, "[bench] {}\n", label);
          {
            Model model(s.config, *backend, to_backend(s.params, *backend));
            auto got =
                engine::run_engine_bench(model, label, opt, copy_bw, [](const std::string& line) {
                  fmt::print(stderr, "[bench]   {}\n", line);
                  std::fflush(stderr);
                });
            double first_tg = 0;  // the first case's decode step, for the DIFF / baseline ratio
            for (const auto& r : got) {
              if (r.ms_per_step > 0 && first_tg == 0) first_tg = r.ms_per_step;
            }
            tg_batch1.push_back(first_tg);
            rows.insert(rows.end(), got.begin(), got.end());
          }
          if (a->hf) {
            if (s.config.attention == AttentionKind::diff_v2) {
              engine::BenchRow r;
              r.model = label;
              r.backend = "HF transformers";
              r.note = "DIFF V2 has no transformers class";
              rows.push_back(r);
              continue;
            }
            std::filesystem::path work =
                a->work.empty() ? std::filesystem::temp_directory_path() / "difftx-bench"
                                : std::filesystem::path(a->work);
            std::filesystem::create_directories(work);
            std::filesystem::path ckpt = s.checkpoint;
            const std::string tag =
                fmt::format("{}-{}", attention_kind_name(s.config.attention), &s - subjects.data());
            if (ckpt.empty()) {
              ckpt = work / (tag + "-checkpoint");
              save_model_checkpoint(ckpt, nlohmann::json{{"model", s.config.to_json()}}, s.config,
                                    s.params, {}, 0);
            }
            const std::filesystem::path hf_dir = work / (tag + "-hf");
            hf::HfExportOptions eo;
            eo.dtype = DType::bf16;
            const hf::HfExportResult ex = hf::export_hf(ckpt, hf_dir, eo);
            fmt::print(stderr, "[bench] exported {} ({} parameters) to {}\n", ex.model_type,
                       ex.parameters, hf_dir.string());
            auto hf_rows = run_hf(*a, hf_dir, label);
            rows.insert(rows.end(), hf_rows.begin(), hf_rows.end());
          }
        }
        fmt::print("{}", engine::bench_table(rows));
        if (tg_batch1.size() == 2 && tg_batch1[0] > 0 && tg_batch1[1] > 0) {
          fmt::print(
              "\nDIFF / matched baseline time per decode step (batch {}, context {}): {:.3f}\n",
              a->batches[0], a->contexts[0], tg_batch1[0] / tg_batch1[1]);
        }
        std::fflush(stdout);
        if (!a->json.empty()) {
          nlohmann::json j = {{"backend", backend->name()},
                              {"copy_bandwidth", copy_bw},
                              {"spec_bandwidth", engine::kSpecBandwidth},
                              {"rows", engine::bench_json(rows)}};
          write_file_atomic(a->json, j.dump(2) + "\n");
        }
      });
    }};

}  // namespace
}  // namespace difftx::cli
