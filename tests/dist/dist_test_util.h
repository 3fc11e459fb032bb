// Helpers for the multi-process tests: running a command (mpirun, `difftx train
// --nproc-per-node`) under a wall-clock limit and capturing its output, and the mpirun flags
// this 2-core, root-run test machine needs.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

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

}  // namespace difftx::dist::testing
