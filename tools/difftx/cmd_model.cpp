// `difftx model info` (architecture and parameter count per tensor group) and `difftx model
// match` (the parameter-matched softmax baseline of a DIFF config: a run config in, a run
// config out that `difftx train --config` accepts; a bare model object in, a bare one out).
#include <fmt/core.h>

#include <map>

#include "command_registry.h"
#include "difftx/core/atomic_file.h"
#include "difftx/core/number_format.h"
#include "difftx/model/config.h"
#include "difftx/model/params.h"
#include "difftx/train/run_config.h"

namespace difftx::cli {
namespace {

void print_info(const ModelConfig& c) {
  fmt::print("attention      {}\n", attention_kind_name(c.attention));
  fmt::print("layers         {}\n", c.n_layers);
  fmt::print("d_model        {}\n", c.d_model);
  switch (c.attention) {
    case AttentionKind::diff_v1:
      fmt::print(
          "heads          {} differential heads (2 x {} query/key components of d = {}, value 2d = "
          "{}); "
          "kv heads {} (n_rep {})\n",
          c.n_heads, c.n_heads, c.head_dim, c.v_head_dim(), c.n_kv_heads, c.n_rep());
      break;
    case AttentionKind::diff_v2:
      fmt::print("heads          {} output heads from {} query heads of d = {}; kv heads {}\n",
                 c.n_heads, c.q_heads(), c.head_dim, c.n_kv_heads);
      break;
    case AttentionKind::softmax:
      fmt::print("heads          {} heads of d = {}; kv heads {}\n", c.n_heads, c.head_dim,
                 c.n_kv_heads);
      break;
  }
  fmt::print("ffn_dim        {} (SwiGLU)\n", c.ffn_dim);
  fmt::print("vocab_size     {}\n", c.vocab_size);
  fmt::print("max_seq_len    {}\n", c.max_seq_len);
  fmt::print("rope           {} (theta {})\n", rope_style_name(c.rope_style), c.rope_theta);
  fmt::print("embeddings     {}\n", c.tied_embeddings ? "tied with the output head" : "untied");
  if (c.attention == AttentionKind::diff_v1) {
    std::string inits;
    for (int l = 0; l < c.n_layers; ++l)
      inits += fmt::format("{}{:.3f}", l ? " " : "", lambda_init(l));
    fmt::print("lambda_init    {}\n", inits);
  }
  std::map<std::string, std::pair<int, std::int64_t>> groups;
  for (const auto& s : parameter_specs(c)) {
    auto& g = groups[s.group];
    g.first += 1;
    g.second += shape_numel(s.shape);
  }
  fmt::print("\n{:<12} {:>8} {:>16}\n", "group", "tensors", "parameters");
  for (const auto& [name, g] : groups)
    fmt::print("{:<12} {:>8} {:>16}\n", name, g.first, with_thousands(g.second));
  fmt::print("{:<12} {:>8} {:>16}\n", "total", parameter_specs(c).size(),
             with_thousands(parameter_count(c)));
}

const CommandRegistration info_reg{
    10, [](CLI::App& app) {
      CLI::App* model = command_group(app, "model", "Inspect model configurations");
      auto* info = model->add_subcommand(
          "info", "Print the architecture and its parameter count per tensor group");
      auto config = std::make_shared<std::string>();
      info->add_option("--config", *config,
                       "Model config JSON, or a run config with a \"model\" object")
          ->required();
      info->callback([config] { print_info(load_model_config(*config)); });

      auto* match = model->add_subcommand("match",
                                          "Derive the parameter-matched softmax baseline of a DIFF "
                                          "config (2h heads of the same d). Given a run "
                                          "config, writes a run config (model replaced, output.dir "
                                          "+ \"-baseline\") that `difftx train` accepts; "
                                          "given a bare model object, writes a bare model object");
      auto in = std::make_shared<std::string>();
      auto out = std::make_shared<std::string>();
      match->add_option("--config", *in, "DIFF run config (or a bare model config)")->required();
      match->add_option("--out", *out, "Write the baseline config JSON here (default: print it)");
      match->callback([in, out] {
        ModelConfig diff = load_model_config(*in);
        if (diff.attention == AttentionKind::softmax) {
          fail(
              "{} is already a softmax model; `model match` derives the baseline of a diff_v1 or "
              "diff_v2 config",
              *in);
        }
        ModelConfig base = matched_baseline(diff);
        const nlohmann::json given = nlohmann::json::parse(read_file_text(*in));
        const bool run_config = given.is_object() && given.contains("model");
        nlohmann::json result;
        if (run_config) {
          result = given;
          result["comment"] = fmt::format(
              "Parameter-matched softmax baseline of {} (written by `difftx model match`).", *in);
          result["model"] = base.to_json();
          const std::string dir = given.contains("output") && given["output"].contains("dir") &&
                                          given["output"]["dir"].is_string()
                                      ? given["output"]["dir"].get<std::string>()
                                      : OutputSettings{}.dir.string();
          result["output"]["dir"] = dir + "-baseline";
          (void)RunConfig::from_json(result, "the matched run config");  // what train will read
        } else {
          result = base.to_json();
        }
        std::string text = result.dump(2) + "\n";
        if (out->empty()) {
          fmt::print("{}", text);
        } else {
          write_file_atomic(*out, text);
        }
        fmt::print(stderr,
                   "{}: {} parameters; matched softmax baseline: {} parameters ({:+.4f}%)\n",
                   attention_kind_name(diff.attention), with_thousands(parameter_count(diff)),
                   with_thousands(parameter_count(base)),
                   100.0 * double(parameter_count(base) - parameter_count(diff)) /
                       double(parameter_count(diff)));
        if (!out->empty()) {
          if (run_config) {
            fmt::print(stderr,
                       "wrote a run config to {} (output.dir {}): train it with `difftx train "
                       "--config {}`\n",
                       *out, result["output"]["dir"].get<std::string>(), *out);
          } else {
            fmt::print(stderr,
                       "wrote a model config (a bare \"model\" object, like the input) to {}: put "
                       "it under "
                       "\"model\" in a run file to train it, or give `model match` a run config\n",
                       *out);
          }
        }
      });
    }};

}  // namespace
}  // namespace difftx::cli
