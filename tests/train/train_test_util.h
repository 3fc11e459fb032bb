// Shared fixture for training tests: a tiny prepared corpus (synthetic text, small vocabulary),
// a tiny run config, and a helper that runs the difftx CLI and captures its output.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

namespace difftx::testing {
namespace fs = std::filesystem;

struct CommandResult {
  int status = -1;
  std::string output;  // stdout and stderr
};

inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  while (fgets(buf, sizeof buf, pipe)) r.output += buf;
  int status = pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  return r;
}

inline std::string cli() {
  return DIFFTX_CLI;
}

// Writes a synthetic corpus (sentences from a small grammar) and prepares it once per process.
inline fs::path tiny_data_dir() {
  static fs::path dir = [] {
    fs::path root = fs::temp_directory_path() / ("difftx_train_data_" + std::to_string(::getpid()));
    fs::remove_all(root);
    fs::create_directories(root / "text");
    const char* subjects[] = {"the cat",   "a dog",       "the old man",
                              "my sister", "the teacher", "a bird"};
    const char* verbs[] = {"sees", "likes", "follows", "finds", "calls", "helps"};
    const char* objects[] = {"the house",  "a red ball", "the river",
                             "our friend", "the garden", "a small boat"};
    std::mt19937 rng(5);
    for (int doc = 0; doc < 24; ++doc) {
      std::ofstream out(root / "text" / ("doc" + std::to_string(doc) + ".txt"));
      for (int s = 0; s < 120; ++s) {
        out << subjects[rng() % 6] << " " << verbs[rng() % 6] << " " << objects[rng() % 6] << ". ";
        if (s % 10 == 9) out << "\n";
      }
    }
    auto r = run_command(cli() + " data prepare --input " + (root / "text").string() + " --out " +
                         (root / "prepared").string() + " --vocab-size 384 --progress none");
    if (r.status != 0) throw std::runtime_error("data prepare failed: " + r.output);
    return root / "prepared";
  }();
  return dir;
}

inline nlohmann::json tiny_run_config(const fs::path& out_dir, int steps) {
  return {{"model",
           {{"vocab_size", 384},
            {"d_model", 32},
            {"n_layers", 2},
            {"attention", "diff_v1"},
            {"n_heads", 2},
            {"n_kv_heads", 1},
            {"max_seq_len", 32}}},
          {"data",
           {{"path", tiny_data_dir().string()}, {"seq_len", 16}, {"batch_size", 4}, {"seed", 3}}},
          {"optim", {{"grad_accum", 2}}},
          {"schedule", {{"lr", 3e-3}, {"warmup_steps", 2}, {"min_lr", 3e-4}}},
          {"train", {{"steps", steps}, {"eval_every", 3}, {"eval_batches", 2}, {"log_every", 1}}},
          {"output", {{"dir", out_dir.string()}, {"checkpoint_every", 3}, {"keep_last", 2}}}};
}

inline fs::path write_json(const fs::path& path, const nlohmann::json& j) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << j.dump(2);
  return path;
}

}  // namespace difftx::testing
