// Shared by the bad-input tests: running the built `difftx` with a time limit (a hang is a
// failure, not a stuck suite), checking that a refusal is exactly one `difftx: error:` line with
// exit code 1, a trained tiny checkpoint to damage, and rewriting its safetensors files.
//
// DIFFTX_TEST_CLI (environment) replaces the CLI under test, e.g. an older build, to show that
// a test fails without the fix; data preparation always uses the CLI of this build.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "difftx/core/input_file.h"
#include "difftx/core/safetensors.h"
#include "difftx/core/tensor_checksum.h"
#include "train/train_test_util.h"

namespace difftx::safety {
namespace fs = std::filesystem;
using nlohmann::json;

inline std::string cli_under_test() {
  const char* override_cli = std::getenv("DIFFTX_TEST_CLI");
  return override_cli && *override_cli ? override_cli : DIFFTX_CLI;
}

struct CliRun {
  int status = -1;     // exit code; 124 when the time limit killed it, 128 + n for signal n
  std::string output;  // stdout and stderr
};

// Runs `difftx <args>` (shell words) for at most `seconds`.
inline CliRun run_cli(const std::string& args, int seconds = 60) {
  CliRun r;
  const std::string command = "timeout -k 5 " + std::to_string(seconds) + " " + cli_under_test() +
                              " " + args + " 2>&1 </dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe)) r.output += buf;
  const int status = ::pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// The refusal every bad input must get: exit code 1 and one line "difftx: error: ..." holding
// every one of `parts` (and nothing else on stdout or stderr).
inline void expect_clean_error(const CliRun& r, const std::vector<std::string>& parts) {
  EXPECT_EQ(r.status, 1) << (r.status == 124  ? "timed out (a hang)"
                             : r.status > 128 ? "crashed"
                                              : "")
                         << "\n"
                         << r.output.substr(0, 2000);
  std::string text = r.output;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  EXPECT_EQ(text.find('\n'), std::string::npos) << "more than one line:\n"
                                                << r.output.substr(0, 2000);
  EXPECT_EQ(text.rfind("difftx: error: ", 0), 0u) << text.substr(0, 2000);
  for (const auto& p : parts) {
    EXPECT_NE(text.find(p), std::string::npos) << "'" << p << "' not in: " << text.substr(0, 2000);
  }
}

// A fresh folder under the temp folder, removed at the end.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "difftx-safety-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

inline fs::path write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// "[[[ ... 1 ... ]]]", `depth` levels: deep enough (100,000+) to overflow any recursion.
inline std::string deep_json(int depth) {
  return std::string(depth, '[') + "1" + std::string(depth, ']');
}

// A tiny DIFF V1 run config over the shared tiny data (train_test_util.h), one field patched.
inline json tiny_config(const fs::path& out, int steps) {
  return difftx::testing::tiny_run_config(out, steps);
}

// A run folder trained for 3 steps with a checkpoint at step 3 (once per process; copy it
// before damaging it). Returns the run folder.
inline fs::path trained_run() {
  static const fs::path run = [] {
    const fs::path root =
        fs::temp_directory_path() / ("difftx_safety_run_" + std::to_string(::getpid()));
    fs::remove_all(root);
    json cfg = tiny_config(root / "run", 3);
    cfg["train"]["eval_every"] = 0;
    const fs::path path = write_text(root / "run.json", cfg.dump(2));
    const auto r = difftx::testing::run_command(std::string(DIFFTX_CLI) +
                                                " train --quiet --config " + path.string());
    if (r.status != 0) throw std::runtime_error("training the fixture failed: " + r.output);
    return root / "run";
  }();
  return run;
}

inline fs::path copy_run(const fs::path& to) {
  fs::remove_all(to);
  fs::copy(trained_run(), to, fs::copy_options::recursive);
  return to;
}

inline fs::path checkpoint_of(const fs::path& run) {
  return run / "checkpoints" / "step_0000003";
}

// Rewrites a difftx safetensors file after `edit` as a legacy (format 1) file: no
// "format_version", an FNV-1a checksum of the edited tensors (unless `edit` removed "checksum").
// Legacy files are what an older difftx writes and reads, so one fixture serves this build and
// an older one.
inline void rewrite_legacy(const fs::path& file,
                           const std::function<void(SafetensorsFile&)>& edit) {
  SafetensorsFile f = load_safetensors(file);
  edit(f);
  f.metadata.erase("format_version");
  if (f.metadata.count("checksum")) {
    f.metadata["checksum"] = tensors_checksum(f.tensors, TensorChecksum::fnv1a64);
  }
  save_safetensors(file, f.tensors, f.metadata);
}

inline Tensor& tensor_in(SafetensorsFile& f, const std::string& name) {
  for (auto& [n, t] : f.tensors) {
    if (n == name) return t;
  }
  throw std::runtime_error("no tensor " + name);
}

}  // namespace difftx::safety
