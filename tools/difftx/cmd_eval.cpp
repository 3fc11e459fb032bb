// `difftx eval TASK`: the paper's measurements on one or more checkpoints side by side (ppl,
// outliers, quant-logits, needle, icl, attention-map), each writing <out>/results.json, and
// `difftx eval report DIR`, which renders every result under DIR into one report.html.
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <sstream>

#include "command_registry.h"
#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/eval/attention_map.h"
#include "difftx/eval/icl.h"
#include "difftx/eval/needle.h"
#include "difftx/eval/outliers.h"
#include "difftx/eval/ppl.h"
#include "difftx/eval/quant.h"
#include "difftx/eval/report.h"
#include "difftx/eval/results.h"
#include "difftx/runtime/backend_factory.h"

namespace difftx::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

struct CommonArgs {
  std::vector<std::string> checkpoints;
  std::string device = "cpu";
  std::string out;
  std::uint64_t seed = 1;
  std::string progress = "auto";
  std::string data;
  std::vector<std::string> text;
};

// "0,25,50" -> {0, 25, 50}, each in [lo, hi].
std::vector<int> parse_int_list(const std::string& option, const std::string& text, int lo,
                                int hi) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size())
      fail("{}: '{}' is not an integer (give a comma-separated list)", option, item);
    if (v < lo || v > hi) fail("{}: {} is outside [{}, {}]", option, v, lo, hi);
    out.push_back(int(v));
  }
  if (out.empty()) fail("{}: give at least one value", option);
  return out;
}

ProgressMode progress_mode(const std::string& s) {
  if (s == "auto") return ProgressMode::automatic;
  if (s == "bar") return ProgressMode::terminal;
  if (s == "lines") return ProgressMode::lines;
  if (s == "none") return ProgressMode::quiet;
  fail("--progress must be auto, bar, lines or none, not '{}'", s);
}

void add_common(CLI::App* cmd, CommonArgs& a, bool text) {
  cmd->add_option("--checkpoint", a.checkpoints,
                  "Checkpoint folder or training run folder (its newest checkpoint); repeat to "
                  "compare models")
      ->required();
  cmd->add_option("--device", a.device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--out", a.out, "Output folder for results.json (default: eval/<task>)");
  cmd->add_option("--seed", a.seed, "Seed of every random choice (samples, demonstrations, orders)")
      ->capture_default_str();
  cmd->add_option("--progress", a.progress, "Progress output: auto, bar, lines or none")
      ->capture_default_str();
  if (text) {
    cmd->add_option(
        "--data", a.data,
        "Held-out text: a prepared data folder (its validation split); default: the first "
        "checkpoint's data.path");
    cmd->add_option("--text", a.text,
                    "Held-out text: UTF-8 text files or folders instead of --data");
  }
}

eval::HeldOutText held_out(const CommonArgs& a, const std::vector<eval::EvalModel>& models) {
  eval::HeldOutSource src;
  if (!a.data.empty() && !a.text.empty()) fail("give --data or --text, not both");
  if (!a.text.empty()) {
    for (const auto& t : a.text) src.text.push_back(t);
  } else if (!a.data.empty()) {
    src.data = a.data;
  } else {
    if (models.front().data_path.empty()) {
      fail("no held-out text: give --data DIR (a prepared data folder) or --text FILE");
    }
    src.data = models.front().data_path;
    if (!fs::exists(src.data)) {
      fail(
          "no held-out text: the checkpoint's data.path '{}' does not exist here; give --data DIR "
          "or --text FILE",
          src.data.string());
    }
  }
  return eval::HeldOutText::load(src);
}

// Loads the models, runs `per_model` on each, writes <out>/results.json.
template <typename Setup, typename PerModel>
void run_task(const std::string& task, const CommonArgs& a, Setup&& setup, PerModel&& per_model) {
  const auto start = std::chrono::steady_clock::now();
  const ProgressMode mode = progress_mode(a.progress);
  const fs::path out = a.out.empty() ? fs::path("eval") / task : fs::path(a.out);
  ensure_writable_directory(out);
  auto backend = make_backend(a.device);
  eval::EvalContext ctx;
  ctx.backend = backend.get();
  ctx.device = a.device;
  ctx.seed = a.seed;
  ctx.progress = mode;
  std::vector<eval::EvalModel> models = eval::load_eval_models(a.checkpoints, *backend);
  json options, data = json::object();
  setup(models, options, data, out);
  json entries = json::array();
  for (std::size_t i = 0; i < models.size(); ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    json entry = models[i].describe();
    entry["results"] = per_model(models[i], ctx, i);
    entry["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    entries.push_back(entry);
  }
  eval::RunInfo info;
  info.task = task;
  info.command = eval::current_command_line("difftx eval " + task);
  info.seed = a.seed;
  info.device = a.device;
  info.backend = backend->name();
  info.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const fs::path file = eval::write_results(out, eval::make_results(info, options, data, entries));
  fmt::print("{}: {} model(s), {:.1f} s -> {}\n", task, models.size(), info.wall_seconds,
             file.string());
}

CLI::App* task_command(CLI::App& group, const std::string& name, const std::string& help) {
  return group.add_subcommand(name, help);
}

const CommandRegistration reg{
    45, [](CLI::App& app) {
      CLI::App* group = command_group(
          app, "eval", "Measure checkpoints: the paper's evaluations, and their report");

      {  // ppl
        auto a = std::make_shared<CommonArgs>();
        auto o = std::make_shared<eval::PplOptions>();
        auto* cmd = task_command(
            *group, "ppl", "Loss, perplexity and bits per byte on held-out text; NLL by position");
        add_common(cmd, *a, true);
        cmd->add_option("--context", o->context, "Window length in tokens (default: max_seq_len)");
        cmd->add_option("--stride", o->stride,
                        "Start-to-start distance of windows (default: --context)");
        cmd->add_option("--batch", o->batch, "Windows per forward")->capture_default_str();
        cmd->add_option("--max-tokens", o->max_tokens, "Held-out tokens to use at most (0: all)")
            ->capture_default_str();
        cmd->add_option("--buckets", o->buckets, "Position buckets")->capture_default_str();
        cmd->callback([a, o] {
          std::unique_ptr<eval::HeldOutText> text;
          run_task(
              "ppl", *a,
              [&](auto& models, json& options, json& data, const fs::path&) {
                text = std::make_unique<eval::HeldOutText>(held_out(*a, models));
                options = o->to_json();
                data = text->describe();
              },
              [&](eval::EvalModel& m, const eval::EvalContext& ctx, std::size_t) {
                return eval::run_ppl(m, *text, *o, ctx);
              });
        });
      }

      {  // outliers
        auto a = std::make_shared<CommonArgs>();
        auto o = std::make_shared<eval::OutlierOptions>();
        auto* cmd = task_command(*group, "outliers",
                                 "Largest attention logits and hidden states (Table 5)");
        add_common(cmd, *a, true);
        cmd->add_option("--tokens", o->tokens, "Token budget")->capture_default_str();
        cmd->add_option("--context", o->context, "Window length (default: max_seq_len)");
        cmd->add_option("--batch", o->batch, "Windows per forward")->capture_default_str();
        cmd->callback([a, o] {
          std::unique_ptr<eval::HeldOutText> text;
          run_task(
              "outliers", *a,
              [&](auto& models, json& options, json& data, const fs::path&) {
                text = std::make_unique<eval::HeldOutText>(held_out(*a, models));
                options = o->to_json();
                data = text->describe();
              },
              [&](eval::EvalModel& m, const eval::EvalContext& ctx, std::size_t) {
                return eval::run_outliers(m, *text, *o, ctx);
              });
        });
      }

      // needle options, shared by `needle` and `quant-logits --task needle`
      struct NeedleArgs {
        std::string configs = "1:1", depths = "0,25,50,75,100", lengths, keys;
        int samples = 50, digits = 7;
        bool no_allocation = false;
      };
      auto add_needle = [](CLI::App* cmd, NeedleArgs& n) {
        cmd->add_option("--needles", n.configs, "N:R pairs (needles:queried), comma-separated")
            ->capture_default_str();
        cmd->add_option("--depths", n.depths, "Answer depths in percent")->capture_default_str();
        cmd->add_option("--lengths", n.lengths,
                        "Prompt lengths in tokens (default: max_seq_len - digits - 4)");
        cmd->add_option("--samples", n.samples, "Samples per (N, R, depth, length) cell")
            ->capture_default_str();
        cmd->add_option("--digits", n.digits, "Digits of the magic numbers")->capture_default_str();
        cmd->add_option("--keys", n.keys,
                        "File of needle keys, one per line (default: 100 built-in city names)");
      };
      auto needle_options = [](const NeedleArgs& n) {
        eval::NeedleOptions o;
        o.configs = eval::parse_needle_configs(n.configs);
        o.depths = parse_int_list("--depths", n.depths, 0, 100);
        if (!n.lengths.empty()) o.lengths = parse_int_list("--lengths", n.lengths, 8, 1 << 24);
        o.samples = n.samples;
        o.digits = n.digits;
        o.allocation = !n.no_allocation;
        DIFFTX_CHECK(n.samples >= 1, "--samples must be >= 1, got {}", n.samples);
        if (!n.keys.empty()) {
          std::stringstream ss(read_file_text(n.keys));
          std::string line;
          while (std::getline(ss, line)) {
            while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
            if (!line.empty()) o.keys.push_back(line);
          }
          DIFFTX_CHECK(!o.keys.empty(), "--keys {}: no keys in the file", n.keys);
          std::vector<std::string> sorted = o.keys;
          std::sort(sorted.begin(), sorted.end());
          DIFFTX_CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end(),
                       "--keys {}: keys must be distinct", n.keys);
        }
        return o;
      };

      {  // quant-logits
        auto a = std::make_shared<CommonArgs>();
        auto o = std::make_shared<eval::QuantOptions>();
        auto n = std::make_shared<NeedleArgs>();
        auto bits = std::make_shared<std::string>("16,8,6,4");
        auto task = std::make_shared<std::string>();
        auto* cmd = task_command(
            *group, "quant-logits",
            "Loss and KL of the model with absmax-quantized attention logits (Fig. 8)");
        add_common(cmd, *a, true);
        cmd->add_option("--bits", *bits, "Widths (16 = unquantized)")->capture_default_str();
        cmd->add_flag("--per-head", o->per_head, "One scale per score map instead of per tensor");
        cmd->add_option("--tokens", o->tokens, "Held-out tokens for loss and KL")
            ->capture_default_str();
        cmd->add_option("--context", o->context, "Window length (default: max_seq_len)");
        cmd->add_option("--batch", o->batch, "Windows per forward")->capture_default_str();
        cmd->add_option("--task", *task, "Also measure this task at each width: needle");
        add_needle(cmd, *n);
        cmd->callback([a, o, n, bits, task, needle_options] {
          o->bits = parse_int_list("--bits", *bits, 2, 16);
          if (!task->empty()) {
            if (*task != "needle")
              fail("--task '{}': only needle can be measured under quantization", *task);
            o->needle = true;
            o->needle_options = needle_options(*n);
          }
          std::unique_ptr<eval::HeldOutText> text;
          run_task(
              "quant-logits", *a,
              [&](auto& models, json& options, json& data, const fs::path&) {
                text = std::make_unique<eval::HeldOutText>(held_out(*a, models));
                options = o->to_json();
                data = text->describe();
              },
              [&](eval::EvalModel& m, const eval::EvalContext& ctx, std::size_t) {
                return eval::run_quant(m, *text, *o, ctx);
              });
        });
      }

      {  // needle
        auto a = std::make_shared<CommonArgs>();
        auto n = std::make_shared<NeedleArgs>();
        auto* cmd =
            task_command(*group, "needle",
                         "Multi-needle retrieval accuracy and attention allocation (Tables 2, 3)");
        add_common(cmd, *a, true);
        add_needle(cmd, *n);
        cmd->add_flag("--no-allocation", n->no_allocation, "Skip the attention allocation");
        cmd->callback([a, n, needle_options] {
          const eval::NeedleOptions o = needle_options(*n);
          std::unique_ptr<eval::HeldOutText> text;
          std::vector<std::string> sentences;
          run_task(
              "needle", *a,
              [&](auto& models, json& options, json& data, const fs::path&) {
                text = std::make_unique<eval::HeldOutText>(held_out(*a, models));
                sentences = text->sentences();
                options = o.to_json();
                data = text->describe();
                data["sentences"] = sentences.size();
              },
              [&](eval::EvalModel& m, const eval::EvalContext& ctx, std::size_t) {
                return eval::run_needle(m, sentences, o, ctx);
              });
        });
      }

      {  // icl
        auto a = std::make_shared<CommonArgs>();
        auto shots = std::make_shared<std::string>("0,1,2,4,8,16");
        auto o = std::make_shared<eval::IclOptions>();
        auto jsonl = std::make_shared<std::string>();
        auto test = std::make_shared<int>(100);
        auto classes = std::make_shared<int>(4);
        auto* cmd = task_command(*group, "icl",
                                 "Many-shot in-context classification with constrained decoding");
        add_common(cmd, *a, true);
        cmd->add_option("--shots", *shots, "Numbers of demonstrations")->capture_default_str();
        cmd->add_option("--permutations", o->permutations,
                        "Demonstration orders per number (mean, std, best - worst)")
            ->capture_default_str();
        cmd->add_option("--jsonl", *jsonl,
                        "Labelled examples, one {\"text\", \"label\"} object per line "
                        "(default: the built-in task from the held-out text)");
        cmd->add_option("--icl-test", *test, "Test examples (the rest are demonstrations)")
            ->capture_default_str();
        cmd->add_option("--icl-classes", *classes, "Classes of the built-in task")
            ->capture_default_str();
        cmd->callback([a, shots, o, jsonl, test, classes] {
          o->shots = parse_int_list("--shots", *shots, 0, 1 << 20);
          DIFFTX_CHECK(o->permutations >= 1, "--permutations must be >= 1, got {}",
                       o->permutations);
          DIFFTX_CHECK(*test >= 1, "--icl-test must be >= 1, got {}", *test);
          std::unique_ptr<eval::IclTask> task;
          run_task(
              "icl", *a,
              [&](auto& models, json& options, json& data, const fs::path&) {
                if (!jsonl->empty()) {
                  task =
                      std::make_unique<eval::IclTask>(eval::load_icl_jsonl(*jsonl, *test, a->seed));
                } else {
                  const eval::HeldOutText text = held_out(*a, models);
                  task = std::make_unique<eval::IclTask>(
                      eval::builtin_icl_task(text, *classes, *test, a->seed));
                  data = text.describe();
                }
                options = o->to_json();
                options["test"] = *test;
                data["task"] = task->description;
              },
              [&](eval::EvalModel& m, const eval::EvalContext& ctx, std::size_t) {
                return eval::run_icl(m, *task, *o, ctx);
              });
        });
      }

      {  // attention-map
        auto a = std::make_shared<CommonArgs>();
        auto o = std::make_shared<eval::AttentionMapOptions>();
        auto* cmd = task_command(*group, "attention-map",
                                 "Pictures of one head's attention maps on a prompt");
        add_common(cmd, *a, false);
        cmd->add_option("--prompt", o->prompt, "Text whose attention is drawn")->required();
        cmd->add_option("--layer", o->layer, "Layer (0-based)")->capture_default_str();
        cmd->add_option("--head", o->head, "Head (0-based; DIFF: the differential head)")
            ->capture_default_str();
        cmd->add_option("--max-tokens", o->max_tokens, "Longest prompt drawn, in tokens")
            ->capture_default_str();
        cmd->callback([a, o] {
          fs::path out;
          run_task(
              "attention-map", *a,
              [&](auto&, json& options, json&, const fs::path& dir) {
                options = o->to_json();
                out = dir;
              },
              [&](eval::EvalModel& m, const eval::EvalContext& ctx, std::size_t i) {
                return eval::run_attention_map(m, *o, out, fmt::format("model{}", i), ctx);
              });
        });
      }

      {  // report
        auto dir = std::make_shared<std::string>();
        auto out = std::make_shared<std::string>();
        auto* cmd = group->add_subcommand(
            "report", "Render every results.json under a folder into one report.html");
        cmd->add_option("dir", *dir, "Folder of eval results (searched recursively)")->required();
        cmd->add_option("--out", *out, "Report file (default: <dir>/report.html)");
        cmd->callback([dir, out] {
          const fs::path file = out->empty() ? fs::path(*dir) / "report.html" : fs::path(*out);
          const int n = eval::write_eval_report(*dir, file);
          fmt::print("report: {} result file(s) -> {}\n", n, file.string());
        });
      }
    }};

}  // namespace
}  // namespace difftx::cli
