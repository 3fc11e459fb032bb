// An interrupted `data prepare` (kill -9 while it writes shards) continues where it stopped
// when run again: the result is byte for byte that of an uninterrupted run (nothing lost or
// duplicated), for text files and for a zstd-compressed JSONL file; changed options start over.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <zstd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "data_test_util.h"
#include "difftx/data/prepare_state.h"

extern char** environ;

namespace difftx::data {
namespace {

using test_util::run_cli;
using test_util::TempDir;
using test_util::write_text;

// `megabytes` of text in `files` files (words from a small vocabulary, lines of 12 words).
void write_big_corpus(const fs::path& dir, int files, double megabytes) {
  const char* words[] = {"alpha", "beta",  "gamma",  "delta", "river",  "stone",  "light",
                         "north", "quiet", "market", "story", "winter", "garden", "signal"};
  const auto per_file = static_cast<std::size_t>(megabytes * 1e6 / files);
  std::uint64_t x = 11;
  for (int f = 0; f < files; ++f) {
    std::string text;
    int w = 0;
    while (text.size() < per_file) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      text += words[(x >> 33) % 14];
      text += (++w % 12 == 0) ? "\n" : " ";
    }
    write_text(dir / fmt::format("part{:03}.txt", f), text);
  }
}

// Starts `difftx <args>` and kills it with SIGKILL once `partial` holds `shards` finished
// shards. Returns false if it finished first.
bool run_and_kill(const std::vector<std::string>& args, const fs::path& partial, int shards,
                  const fs::path& log) {
  std::vector<std::string> argv_s = {DIFFTX_CLI};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  EXPECT_EQ(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&actions);
  bool killed = false;
  for (int i = 0; i < 120000; ++i) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return false;  // finished by itself
    int finished = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(partial, ec)) {
      const std::string name = e.path().filename().string();
      finished += name.size() == 18 && name.rfind("train-", 0) == 0;  // train-NNNNN.tokens
    }
    if (finished >= shards) {
      ::kill(pid, SIGKILL);
      killed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return killed && WIFSIGNALED(status);
}

void expect_resume_gives_the_uninterrupted_result(const TempDir& tmp,
                                                  const std::vector<std::string>& common) {
  // The reference: one uninterrupted run.
  std::string words;
  for (const auto& a : common) words += " " + a;
  const auto ref =
      run_cli("data prepare" + words + " --out " + (tmp / "ref").string(), tmp / "ref.log", 600);
  ASSERT_EQ(ref.exit_code, 0) << ref.output;
  // Killed after 4 shards, then run again.
  std::vector<std::string> args = {"data", "prepare"};
  args.insert(args.end(), common.begin(), common.end());
  args.push_back("--out");
  args.push_back((tmp / "out").string());
  ASSERT_TRUE(run_and_kill(args, tmp / "out" / kPartialDir, 4, tmp / "killed.log"))
      << "the run finished before it could be interrupted";
  EXPECT_FALSE(fs::exists(tmp / "out" / "meta.json"));
  EXPECT_TRUE(fs::exists(tmp / "out" / kPartialDir / "state.json"));
  const auto again =
      run_cli("data prepare" + words + " --out " + (tmp / "out").string(), tmp / "again.log", 600);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("resuming the interrupted preparation"), std::string::npos)
      << again.output;
  EXPECT_NE(again.output.find("resumed    an interrupted run"), std::string::npos) << again.output;
  EXPECT_FALSE(fs::exists(tmp / "out" / kPartialDir));
  // Byte for byte the uninterrupted result (meta.json included: it names no output path).
  EXPECT_EQ(test_util::folder_digest(tmp / "out"), test_util::folder_digest(tmp / "ref"));
}

TEST(DataPrepareResume, KilledRunOfTextFilesContinuesExactly) {
  TempDir tmp;
  write_big_corpus(tmp / "corpus", 12, 24.0);
  expect_resume_gives_the_uninterrupted_result(
      tmp, {"--input", (tmp / "corpus").string(), "--vocab-size", "400", "--shard-tokens", "100000",
            "--tokenizer-sample-bytes", "2000000", "--val-fraction", "0.2", "--progress", "none"});
}

TEST(DataPrepareResume, KilledRunOfCompressedJsonlContinuesExactly) {
  TempDir tmp;
  write_big_corpus(tmp / "text", 2000, 20.0);
  std::string jsonl;
  for (int f = 0; f < 2000; ++f) {
    jsonl +=
        nlohmann::json{{"text", read_file_text(tmp / "text" / fmt::format("part{:03}.txt", f))}}
            .dump() +
        "\n";
  }
  std::string zst(ZSTD_compressBound(jsonl.size()), '\0');
  zst.resize(ZSTD_compress(zst.data(), zst.size(), jsonl.data(), jsonl.size(), 1));
  write_text(tmp / "corpus" / "docs.jsonl.zst", zst);
  expect_resume_gives_the_uninterrupted_result(
      tmp, {"--input", (tmp / "corpus").string(), "--vocab-size", "400", "--shard-tokens", "100000",
            "--tokenizer-sample-bytes", "2000000", "--val-fraction", "0.1", "--progress", "none"});
}

TEST(DataPrepareResume, ChangedOptionsStartOver) {
  TempDir tmp;
  write_big_corpus(tmp / "corpus", 8, 16.0);
  const std::vector<std::string> args = {
      "data",       "prepare",        "--input", (tmp / "corpus").string(),  "--vocab-size",
      "400",        "--shard-tokens", "100000",  "--tokenizer-sample-bytes", "2000000",
      "--progress", "none",           "--out",   (tmp / "out").string()};
  ASSERT_TRUE(run_and_kill(args, tmp / "out" / kPartialDir, 2, tmp / "killed.log"));
  const auto again = run_cli(
      "data prepare --progress none --vocab-size 400 --seed 2 "
      "--shard-tokens 100000 --tokenizer-sample-bytes 2000000 --input " +
          (tmp / "corpus").string() + " --out " + (tmp / "out").string(),
      tmp / "again.log", 600);
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("the inputs or options changed since the interrupted run"),
            std::string::npos)
      << again.output;
  EXPECT_EQ(again.output.find("resumed"), std::string::npos) << again.output;
}

}  // namespace
}  // namespace difftx::data
