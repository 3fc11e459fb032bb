// Data folders checked as a whole (issue 17): a validation shard of another vocabulary, a
// garbage, empty or truncated tokenizer.model, a dangling-symlink shard, meta.json listing other
// shards, a FIFO as data: each refused by the loaders and by `difftx train` with one clear error
// line, where before they were trained on (or hung).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "data_test_util.h"
#include "difftx/core/checksum.h"
#include "difftx/core/error.h"
#include "difftx/data/data_folder.h"
#include "difftx/data/loader.h"
#include "difftx/data/prepare.h"
#include "difftx/data/shard.h"

namespace difftx::data {
namespace {

using test_util::run_cli;
using test_util::TempDir;

// A freshly prepared folder (vocabulary 400) for each test to damage.
fs::path prepare_folder(const TempDir& tmp) {
  test_util::write_small_corpus(tmp / "text", 8);
  PrepareOptions o;
  o.inputs = {tmp / "text"};
  o.out_dir = tmp / "data";
  o.vocab_size = 400;
  o.val_fraction = 0.25;
  o.progress = ProgressMode::quiet;
  prepare_data(o);
  return o.out_dir;
}

// A run config training a tiny model on `data` for one step.
fs::path write_run_config(const TempDir& tmp, const fs::path& data) {
  const nlohmann::json cfg = {
      {"model",
       {{"vocab_size", 400},
        {"d_model", 32},
        {"n_layers", 1},
        {"attention", "diff_v1"},
        {"n_heads", 2},
        {"n_kv_heads", 1},
        {"max_seq_len", 16}}},
      {"data", {{"path", data.string()}, {"seq_len", 16}, {"batch_size", 2}, {"seed", 1}}},
      {"schedule", {{"lr", 1e-3}, {"warmup_steps", 1}, {"min_lr", 1e-4}}},
      {"train", {{"steps", 1}, {"eval_every", 1}, {"eval_batches", 1}, {"log_every", 1}}},
      {"output", {{"dir", (tmp / "run").string()}, {"checkpoint_every", 1}, {"keep_last", 1}}}};
  const fs::path p = tmp / "run.json";
  test_util::write_text(p, cfg.dump(2));
  return p;
}

std::string loader_error(const fs::path& data, const std::string& split = "train") {
  LoaderOptions o;
  o.path = data;
  o.split = split;
  o.seq_len = 16;
  o.batch_size = 2;
  try {
    if (split == "train") {
      TrainLoader l(o);
    } else {
      EvalLoader l(o);
    }
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// `difftx train` on the damaged folder: exit 1, one error line containing `needle`.
void expect_train_refuses(const TempDir& tmp, const fs::path& data, const std::string& needle) {
  const auto r =
      run_cli("train --config " + write_run_config(tmp, data).string(), tmp / "train.log", 120);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("difftx: error: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "run" / "checkpoints" / "step_0000001")) << r.output;
}

// Rewrites meta.json's entry for `file` to describe the shard now on disk.
void relist(const fs::path& data, const std::string& key, const std::string& file) {
  auto meta = nlohmann::json::parse(read_file_text(data / kMetaFile));
  for (auto& entry : meta[key]["shards"]) {
    if (entry["file"] == file) entry = shard_entry_json(file, ShardReader(data / file).header());
  }
  test_util::write_text(data / kMetaFile, meta.dump(2));
}

TEST(DataFolder, IntactFolderTrains) {
  TempDir tmp;
  const fs::path data = prepare_folder(tmp);
  const DataFolderInfo info = check_data_folder(data);
  EXPECT_TRUE(info.has_meta);
  EXPECT_TRUE(info.has_tokenizer);
  EXPECT_EQ(info.vocab_size, 400u);
  EXPECT_EQ(info.shards.at("train").size(), 1u);
  EXPECT_EQ(info.shards.at("val").size(), 1u);
  EXPECT_EQ(loader_error(data), "");
  const auto r =
      run_cli("train --config " + write_run_config(tmp, data).string(), tmp / "train.log", 300);
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(DataFolder, ValidationShardOfAnotherVocabularyIsRefused) {
  for (std::uint32_t vocab : {8192u, 70000u}) {
    TempDir tmp;
    const fs::path data = prepare_folder(tmp);
    // A well-formed validation shard made with another tokenizer, listed consistently.
    const auto ids = ShardReader(data / "val-00000.tokens").read_all();
    write_shard(data / "val-00000.tokens", ids, vocab, 2);
    relist(data, "validation", "val-00000.tokens");
    const std::string msg = loader_error(data);
    EXPECT_NE(msg.find(fmt::format("vocabulary size {}", vocab)), std::string::npos) << msg;
    EXPECT_NE(loader_error(data, "val"), "");
    expect_train_refuses(tmp, data, fmt::format("vocabulary size {}", vocab));
  }
}

TEST(DataFolder, GarbageEmptyOrTruncatedTokenizerIsRefused) {
  struct Case {
    const char* name;
    std::function<std::string(const std::string&)> damage;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"garbage", [](const std::string&) { return std::string(5000, '\x7f'); },
       "is not a SentencePiece model"},
      {"empty", [](const std::string&) { return std::string(); }, "is empty"},
      {"truncated", [](const std::string& m) { return m.substr(0, m.size() / 2); },
       "tokenizer.model"},
      // a model with an empty piece: SentencePiece's trie builder threw through the loader (a
      // fuzz finding, kept in fuzz/regressions/tokenizer_model)
      {"empty piece",
       [](const std::string&) {
         return read_file_text(fs::path(DIFFTX_SOURCE_DIR) /
                               "fuzz/regressions/tokenizer_model/empty_piece_a");
       },
       "is not a usable SentencePiece model"},
  };
  for (const Case& c : cases) {
    TempDir tmp;
    const fs::path data = prepare_folder(tmp);
    const std::string model = read_file_text(data / kTokenizerFile);
    test_util::write_text(data / kTokenizerFile, c.damage(model));
    const std::string msg = loader_error(data);
    EXPECT_NE(msg.find(c.needle), std::string::npos) << c.name << ": " << msg;
    EXPECT_NE(msg.find("re-run `difftx data prepare"), std::string::npos) << c.name << ": " << msg;
    expect_train_refuses(tmp, data, c.needle);
  }
}

TEST(DataFolder, TokenizerOfAnotherDataSetIsRefused) {
  TempDir tmp, other;
  const fs::path data = prepare_folder(tmp);
  test_util::write_small_corpus(other / "text", 8, 99);
  PrepareOptions o;
  o.inputs = {other / "text"};
  o.out_dir = other / "data";
  o.vocab_size = 400;
  o.progress = ProgressMode::quiet;
  prepare_data(o);
  fs::copy_file(other / "data" / kTokenizerFile, data / kTokenizerFile,
                fs::copy_options::overwrite_existing);
  const std::string msg = loader_error(data);
  EXPECT_NE(msg.find("is not the tokenizer these shards were made with"), std::string::npos) << msg;
}

TEST(DataFolder, DanglingSymlinkShardIsRefused) {
  TempDir tmp;
  const fs::path data = prepare_folder(tmp);
  fs::rename(data / "train-00000.tokens", tmp / "moved.tokens");
  fs::create_symlink(tmp / "elsewhere" / "train-00000.tokens", data / "train-00000.tokens");
  const std::string msg = loader_error(data, "val");  // even the other split's loader sees it
  EXPECT_NE(msg.find("train-00000.tokens' is a symbolic link to"), std::string::npos) << msg;
  EXPECT_NE(msg.find("which does not exist"), std::string::npos) << msg;
  expect_train_refuses(tmp, data, "which does not exist");
  // A symbolic link to a real shard is fine.
  fs::remove(data / "train-00000.tokens");
  fs::create_symlink(tmp / "moved.tokens", data / "train-00000.tokens");
  EXPECT_EQ(loader_error(data), "");
}

TEST(DataFolder, MetadataListingOtherShardsIsRefused) {
  TempDir tmp;
  const fs::path data = prepare_folder(tmp);
  const auto original = read_file_text(data / kMetaFile);
  // meta.json names a shard that is not there.
  auto meta = nlohmann::json::parse(original);
  meta["train"]["shards"][0]["file"] = "train-00007.tokens";
  test_util::write_text(data / kMetaFile, meta.dump(2));
  std::string msg = loader_error(data);
  EXPECT_NE(msg.find("lists the train shard 'train-00007.tokens', which is missing"),
            std::string::npos)
      << msg;
  expect_train_refuses(tmp, data, "which is missing");
  // A shard in the folder that meta.json does not list (a leftover of another preparation).
  test_util::write_text(data / kMetaFile, original);
  fs::copy_file(data / "train-00000.tokens", data / "train-00001.tokens");
  msg = loader_error(data);
  EXPECT_NE(msg.find("'train-00001.tokens' is in"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not listed in its meta.json"), std::string::npos) << msg;
  fs::remove(data / "train-00001.tokens");
  // A listed shard replaced by another shard of the same vocabulary.
  const auto val = ShardReader(data / "val-00000.tokens").read_all();
  write_shard(data / "train-00000.tokens", val, 400, 2);
  msg = loader_error(data);
  EXPECT_NE(msg.find("is not the one this data set was prepared with"), std::string::npos) << msg;
  // A description of the old format.
  meta = nlohmann::json::parse(original);
  meta["version"] = 1;
  test_util::write_text(data / kMetaFile, meta.dump(2));
  msg = loader_error(data);
  EXPECT_NE(msg.find("format version 1"), std::string::npos) << msg;
}

TEST(DataFolder, FifoAsDataIsRefusedWithoutHanging) {
  TempDir tmp;
  const fs::path data = prepare_folder(tmp);
  // data.path pointing at a FIFO.
  const fs::path fifo = tmp / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(loader_error(fifo).find("is a FIFO (named pipe), not a regular file"),
            std::string::npos);
  // `train` looks for <data>/tokenizer.model first: any clear error, quickly (no hang).
  expect_train_refuses(tmp, fifo, fifo.string());
  // A FIFO in place of a shard.
  fs::remove(data / "val-00000.tokens");
  ASSERT_EQ(::mkfifo((data / "val-00000.tokens").c_str(), 0600), 0);
  const std::string msg = loader_error(data);
  EXPECT_NE(msg.find("val-00000.tokens' is a FIFO"), std::string::npos) << msg;
  const auto info = run_cli("data info " + data.string(), tmp / "info.log", 60);
  EXPECT_EQ(info.exit_code, 1) << info.output;
  EXPECT_NE(info.output.find("FIFO"), std::string::npos) << info.output;
}

}  // namespace
}  // namespace difftx::data
