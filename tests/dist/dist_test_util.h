// Helpers for the multi-process tests: running a command (mpirun, `difftx train
// --nproc-per-node`) under a wall-clock limit and capturing its output, and the mpirun flags
// this 2-core, root-run test machine needs.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace difftx::dist::testing {

struct CommandResult {
  int status = -1;     // exit status; 124 when the limit killed it
  std::string output;  // stdout and stderr
  double seconds = 0;  // wall time
};

// Runs `command` through the shell with `timeout` (coreutils) as a hang guard.
inline CommandResult run_limited(const std::string& command, int limit_seconds) {
  CommandResult r;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string full =
      "timeout -k 5 " + std::to_string(limit_seconds) + " " + command + " 2>&1";
  FILE* pipe = ::popen(full.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) r.output += buf;
  const int status = ::pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// mpirun with N ranks on this host: oversubscribed (N may exceed the cores), unbound, and
// allowed as root (CI runs the tests as root).
inline std::string mpirun(int ranks) {
  std::string cmd = "mpirun -np " + std::to_string(ranks) + " --oversubscribe --bind-to none";
  if (::geteuid() == 0) cmd += " --allow-run-as-root";
  return cmd;
}

inline int count_of(const std::string& text, const std::string& needle) {
  int n = 0;
  for (std::size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1))
    ++n;
  return n;
}

// A command running in the background in its own process group, output to a file; the
// destructor kills the group if it still runs (a test that fails must not leave ranks behind).
class BackgroundJob {
 public:
  BackgroundJob(const std::string& command, const std::filesystem::path& log) : log_(log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      const std::string full = "exec " + command + " > " + log.string() + " 2>&1";
      ::execl("/bin/sh", "sh", "-c", full.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);
  }
  ~BackgroundJob() {
    if (!done_) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  // The exit status once the job ends within `seconds`; nothing if it is still running then.
  std::optional<int> wait_for(double seconds) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < until) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        done_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return std::nullopt;
  }
  std::string output() const {
    std::ifstream in(log_);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

 private:
  std::filesystem::path log_;
  pid_t pid_ = -1;
  bool done_ = false;
};

// The pid of the process whose environment holds every one of `entries` ("NAME=value"), or -1.
inline pid_t find_process_with_env(const std::vector<std::string>& entries) {
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "environ", std::ios::binary);
    const std::string env((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    bool all = !env.empty();
    for (const auto& want : entries) {
      all = all &&
            (env.rfind(want + '\0', 0) == 0 || env.find('\0' + want + '\0') != std::string::npos);
    }
    if (all) return static_cast<pid_t>(std::stol(name));
  }
  return -1;
}

}  // namespace difftx::dist::testing
