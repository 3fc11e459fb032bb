// `difftx export hf` and `difftx import hf`: Hugging Face DiffLlama / Llama interoperability.
#include <fmt/format.h>

#include <filesystem>
#include <memory>
#include <string>

#include "command_registry.h"
#include "difftx/core/error.h"
#include "difftx/core/number_format.h"
#include "difftx/hf/hf_export.h"
#include "difftx/hf/hf_import.h"
#include "difftx/model/params.h"
#include "difftx/runtime/checkpoint_store.h"

namespace {
namespace fs = std::filesystem;
using namespace difftx;

struct ExportArgs {
  fs::path checkpoint;
  fs::path out;
  std::string dtype = "f32";
};

void add_export(CLI::App& group) {
  auto args = std::make_shared<ExportArgs>();
  CLI::App* cmd = group.add_subcommand(
      "hf",
      "Write a Hugging Face model folder (DIFF V1 -> DiffLlama, softmax -> Llama) that "
      "transformers' AutoModelForCausalLM and AutoTokenizer load; DIFF V2 has no transformers "
      "class and is refused");
  cmd->add_option("--checkpoint", args->checkpoint,
                  "A difftx checkpoint folder, or a run folder (its newest checkpoint)")
      ->required()
      ->type_name("DIR");
  cmd->add_option("--out", args->out, "Output folder (created if missing)")
      ->required()
      ->type_name("DIR");
  cmd->add_option("--dtype", args->dtype, "Stored weight type: f32 or bf16")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  cmd->callback([args] {
    hf::HfExportOptions options;
    options.dtype = args->dtype == "bf16" ? DType::bf16 : DType::f32;
    const fs::path checkpoint = resolve_checkpoint(args->checkpoint);
    refuse_export_into_run_folder(args->out, "--out", "a Hugging Face export");
    const hf::HfExportResult r = hf::export_hf(checkpoint, args->out, options);
    fmt::print("exported {} -> {} (model_type \"{}\", {} parameters as {}{})\n",
               checkpoint.string(), args->out.string(), r.model_type, with_thousands(r.parameters),
               args->dtype, r.head_gain_folded ? ", per-head norm gain folded into o_proj" : "");
    for (const auto& f : r.files) fmt::print("  {}\n", f);
    if (!r.tokenizer) {
      fmt::print(
          "note: the checkpoint has no tokenizer.model, so no tokenizer files were "
          "written (AutoTokenizer will not load this folder)\n");
    }
  });
}

struct ImportArgs {
  fs::path in;
  fs::path out;
  std::string rope_style = "auto";
};

fs::path default_import_out(const fs::path& in) {
  fs::path p = fs::absolute(in).lexically_normal();
  std::string name = p.filename().string();
  if (name.empty()) name = p.parent_path().filename().string();
  if (name.empty()) name = "model";
  return fs::path("runs") / "hf-import" / name;
}

void add_import(CLI::App& group) {
  auto args = std::make_shared<ImportArgs>();
  CLI::App* cmd = group.add_subcommand(
      "hf",
      "Convert a Hugging Face DiffLlama or Llama folder (config.json, model.safetensors or "
      "sharded safetensors with model.safetensors.index.json; bf16/fp16/fp32) into a difftx "
      "checkpoint folder");
  cmd->add_option("--in", args->in, "Hugging Face model folder")->required()->type_name("DIR");
  cmd->add_option("--out", args->out,
                  "difftx checkpoint folder to write (default: runs/hf-import/<name of --in>)")
      ->type_name("DIR");
  cmd->add_option("--rope-style", args->rope_style,
                  "RoPE channel layout of the difftx model: auto (the layout a difftx export "
                  "recorded, else half_split), interleaved or half_split")
      ->check(CLI::IsMember({"auto", "interleaved", "half_split"}))
      ->capture_default_str();
  cmd->callback([args] {
    hf::HfImportOptions options;
    if (args->rope_style != "auto")
      options.rope_style = parse_rope_style(args->rope_style, "--rope-style");
    const fs::path out = args->out.empty() ? default_import_out(args->in) : args->out;
    refuse_import_into_run_folder(out, "--out");
    const hf::HfImportResult r = hf::import_hf(args->in, out, options);
    const ModelConfig& c = r.model.config;
    fmt::print("imported {} (model_type \"{}\", {} file{}) -> {}\n", args->in.string(),
               r.model.model_type, r.model.files.size(), r.model.files.size() == 1 ? "" : "s",
               out.string());
    fmt::print(
        "  {}: {} layers, d_model {}, {} heads ({} kv) of dim {}, vocab {}, rope {}, "
        "{} parameters\n",
        attention_kind_name(c.attention), c.n_layers, c.d_model, c.n_heads, c.n_kv_heads,
        c.head_dim, c.vocab_size, rope_style_name(c.rope_style),
        with_thousands(parameter_count(c)));
    if (r.model.tokenizer.empty()) {
      fmt::print("note: '{}' has no tokenizer.model; the checkpoint has no tokenizer\n",
                 args->in.string());
    } else if (!r.tokenizer_note.empty()) {
      fmt::print(
          "note: tokenizer.model was copied, but difftx commands that tokenize text will "
          "refuse it: {}\n",
          r.tokenizer_note);
    }
  });
}

difftx::cli::CommandRegistration reg{
    80, [](CLI::App& app) {
      add_export(*difftx::cli::command_group(app, "export", "Export models to other formats"));
      add_import(*difftx::cli::command_group(app, "import", "Import models from other formats"));
    }};

}  // namespace
