// CheckpointStore: listing by step, atomic saves, keep-last-K, clearing a run, stale partial
// folders; the --checkpoint resolver; refusals of exports/imports into run folders; and the
// second-signal cleanup of a checkpoint being written (real signals, in a child process).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>

#include "difftx/core/error.h"
#include "difftx/runtime/checkpoint_store.h"
#include "difftx/runtime/interrupt.h"

namespace difftx {
namespace {
namespace fs = std::filesystem;

fs::path fresh(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("difftx_store_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void touch(const fs::path& file, const std::string& text = "x") {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

// A complete checkpoint folder as far as the store is concerned.
void fake_checkpoint(const fs::path& dir, const std::string& config = R"({"model": {}})") {
  touch(dir / "model.safetensors");
  touch(dir / "config.json", config);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(CheckpointStore, ListsCompleteCheckpointsByStepNotByName) {
  const fs::path run = fresh("list");
  CheckpointStore store(run);
  EXPECT_FALSE(store.latest());
  EXPECT_FALSE(store.holds_run());
  fake_checkpoint(store.folder_for(9'999'999));
  fake_checkpoint(store.folder_for(10'000'000));  // 8 digits: sorts before by name
  fake_checkpoint(store.folder_for(5));
  touch(store.checkpoints_dir() / "step_0000007" / "config.json");  // no weights: incomplete
  fake_checkpoint(store.checkpoints_dir() / ".step_0000008.partial");
  fake_checkpoint(store.checkpoints_dir() / "notes");
  const auto list = store.list();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].step, 5);
  EXPECT_EQ(list[1].step, 9'999'999);
  EXPECT_EQ(list[2].step, 10'000'000);
  EXPECT_EQ(store.latest()->dir, store.folder_for(10'000'000));
  EXPECT_TRUE(store.holds_run());
}

TEST(CheckpointStore, SaveIsAtomicAndAFailureKeepsEarlierCheckpoints) {
  const fs::path run = fresh("save");
  CheckpointStore store(run);
  store.prepare();
  const fs::path first = store.save(3, [](const fs::path& dir) { fake_checkpoint(dir); });
  EXPECT_EQ(first, store.folder_for(3));
  const std::string msg = error_of([&] {
    store.save(6, [](const fs::path& dir) {
      touch(dir / "model.safetensors");
      fail("disk full");
    });
  });
  EXPECT_NE(msg.find("checkpoint at step 6 failed: disk full"), std::string::npos) << msg;
  EXPECT_NE(msg.find("earlier checkpoints are intact"), std::string::npos) << msg;
  EXPECT_TRUE(fs::exists(first / "model.safetensors"));
  EXPECT_FALSE(fs::exists(store.folder_for(6)));
  for (const auto& e : fs::directory_iterator(store.checkpoints_dir())) {
    EXPECT_EQ(e.path().filename().string().find(".partial"), std::string::npos) << e.path();
  }
  // Saving a step again replaces its folder.
  store.save(3, [](const fs::path& dir) { fake_checkpoint(dir, R"({"model": {"again": 1}})"); });
  std::ifstream in(store.folder_for(3) / "config.json");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("again"), std::string::npos);
}

TEST(CheckpointStore, PruneKeepsTheNewestStepsAndNeverTheProtectedOne) {
  const fs::path run = fresh("prune");
  CheckpointStore store(run);
  for (std::int64_t step : {2, 4, 6, 8, 10'000'000}) fake_checkpoint(store.folder_for(step));
  store.prune(2, 8);
  std::vector<std::int64_t> kept;
  for (const auto& e : store.list()) kept.push_back(e.step);
  EXPECT_EQ(kept, (std::vector<std::int64_t>{8, 10'000'000}));
  // The protected checkpoint survives even when it is not among the newest.
  for (std::int64_t step : {20, 30}) fake_checkpoint(store.folder_for(step));
  store.prune(1, 8);
  kept.clear();
  for (const auto& e : store.list()) kept.push_back(e.step);
  EXPECT_EQ(kept, (std::vector<std::int64_t>{8}));
}

TEST(CheckpointStore, ClearRemovesOnlyTheRunsOwnFilesAndPrepareCleansLeftovers) {
  const fs::path run = fresh("clear");
  CheckpointStore store(run);
  fake_checkpoint(store.folder_for(4));
  touch(store.metrics_file(), "{}\n");
  touch(run / "notes.txt");
  store.clear();
  EXPECT_FALSE(store.holds_run());
  EXPECT_FALSE(fs::exists(store.checkpoints_dir()));
  EXPECT_FALSE(fs::exists(store.metrics_file()));
  EXPECT_TRUE(fs::exists(run / "notes.txt"));
  for (const auto& e : fs::directory_iterator(run)) EXPECT_EQ(e.path().filename(), "notes.txt");

  touch(store.checkpoints_dir() / ".step_0000002.partial" / "model.safetensors");
  touch(run / ".overwritten-1-0000abcd" / "metrics.jsonl");
  fake_checkpoint(store.folder_for(1));
  store.prepare();
  EXPECT_FALSE(fs::exists(store.checkpoints_dir() / ".step_0000002.partial"));
  EXPECT_FALSE(fs::exists(run / ".overwritten-1-0000abcd"));
  EXPECT_TRUE(fs::exists(store.folder_for(1)));
}

TEST(ResolveCheckpoint, CheckpointRunAndHuggingFaceFolders) {
  const fs::path root = fresh("resolve");
  const fs::path ck = root / "ck";
  fake_checkpoint(ck);
  EXPECT_EQ(resolve_checkpoint(ck), ck);

  const fs::path run = root / "run";
  CheckpointStore store(run);
  fake_checkpoint(store.folder_for(3));
  fake_checkpoint(store.folder_for(12));
  EXPECT_EQ(resolve_checkpoint(run), store.folder_for(12));

  const fs::path empty_run = root / "empty_run";
  touch(empty_run / "metrics.jsonl");
  std::string msg = error_of([&] { resolve_checkpoint(empty_run, "--init-from"); });
  EXPECT_NE(msg.find("--init-from"), std::string::npos) << msg;
  EXPECT_NE(msg.find("without a complete checkpoint"), std::string::npos) << msg;

  const fs::path hf = root / "hf";
  touch(hf / "config.json",
        R"({"model_type": "diffllama", "architectures": ["DiffLlamaForCausalLM"]})");
  touch(hf / "model.safetensors");
  msg = error_of([&] { resolve_checkpoint(hf); });
  EXPECT_NE(msg.find("this is a Hugging Face folder: import it first with `difftx import hf --in"),
            std::string::npos)
      << msg;

  msg = error_of([&] { resolve_checkpoint(root / "missing"); });
  EXPECT_NE(msg.find("no such folder"), std::string::npos) << msg;
  touch(root / "file.txt");
  msg = error_of([&] { resolve_checkpoint(root / "file.txt"); });
  EXPECT_NE(msg.find("is a file"), std::string::npos) << msg;
  fs::create_directories(root / "other");
  msg = error_of([&] { resolve_checkpoint(root / "other"); });
  EXPECT_NE(msg.find("neither a difftx checkpoint folder"), std::string::npos) << msg;
}

TEST(ResolveCheckpoint, ExportsAndImportsNeverLandInRunFolders) {
  const fs::path root = fresh("refuse");
  const fs::path run = root / "run";
  fake_checkpoint(CheckpointStore(run).folder_for(2));
  std::string msg =
      error_of([&] { refuse_export_into_run_folder(run, "--out", "a Hugging Face export"); });
  EXPECT_NE(msg.find("is a training run folder"), std::string::npos) << msg;
  msg = error_of([&] {
    refuse_export_into_run_folder(CheckpointStore(run).folder_for(2), "--out",
                                  "a Hugging Face export");
  });
  EXPECT_NE(msg.find("is a difftx checkpoint folder"), std::string::npos) << msg;
  EXPECT_EQ(error_of([&] { refuse_export_into_run_folder(root / "new", "--out", "x"); }), "");

  msg = error_of([&] { refuse_import_into_run_folder(run, "--out"); });
  EXPECT_NE(msg.find("is a training run folder"), std::string::npos) << msg;
  const fs::path trained = CheckpointStore(run).folder_for(2);
  touch(trained / "train_state.safetensors");
  msg = error_of([&] { refuse_import_into_run_folder(trained, "--out"); });
  EXPECT_NE(msg.find("train_state.safetensors"), std::string::npos) << msg;
  const fs::path imported = root / "imported";
  fake_checkpoint(imported);
  EXPECT_EQ(error_of([&] { refuse_import_into_run_folder(imported, "--out"); }), "");
}

// A child process installs the handlers, marks a checkpoint folder as being written and gets
// two real SIGINTs: the first is only recorded; the second removes the folder and exits 130.
TEST(Interrupt, SecondSignalRemovesThePartialCheckpointAndExits) {
  const fs::path root = fresh("signal");
  const fs::path partial = root / "checkpoints" / ".step_0000005.partial";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    InterruptScope scope;
    touch(partial / "model.safetensors", std::string(1 << 16, 'w'));
    touch(partial / ".config.json.tmp1234abcd");
    PartialFolderGuard guard(partial);
    ::raise(SIGINT);
    if (stop_requested() != SIGINT) ::_exit(3);  // the first signal only asks to stop
    ::raise(SIGINT);
    ::_exit(4);  // not reached: the second signal exits
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_FALSE(fs::exists(partial));
  EXPECT_TRUE(fs::exists(root / "checkpoints"));
}

TEST(Interrupt, FirstSignalIsRecordedAndHandlersAreRestored) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    {
      InterruptScope scope;
      if (stop_requested() != 0) ::_exit(3);
      ::raise(SIGTERM);
      if (stop_requested() != SIGTERM) ::_exit(4);
    }
    ::raise(SIGTERM);  // the default action again: killed by the signal
    ::_exit(5);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
  EXPECT_EQ(exit_status_for_signal(SIGINT), 130);
  EXPECT_EQ(exit_status_for_signal(SIGTERM), 143);
}

}  // namespace
}  // namespace difftx
