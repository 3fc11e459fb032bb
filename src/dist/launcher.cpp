// The single-host launcher of `difftx train --nproc-per-node N` (launcher.h): spawning the ranks
// (mpirun for CPU ranks, one child per GPU otherwise), watching them, stopping the rest when one
// fails.
#include "difftx/dist/launcher.h"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <thread>

#include "difftx/core/error.h"
#include "difftx/dist/rendezvous.h"

extern char** environ;

namespace difftx::dist {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kGrace = std::chrono::seconds(15);  // SIGTERM -> SIGKILL

volatile std::sig_atomic_t g_signal = 0;
extern "C" void dist_launcher_signal_handler(int sig) {
  g_signal = sig;
}

std::string self_exe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) fail("cannot find this program's path (/proc/self/exe): {}", std::strerror(errno));
  return std::string(buf, std::size_t(n));
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return fmt::format("was killed by signal {} ({})", WTERMSIG(status),
                       ::strsignal(WTERMSIG(status)));
  }
  return fmt::format("ended with wait status {}", status);
}

// This process's environment with `overrides` set (replacing same-named variables).
std::vector<std::string> environment_with(
    const std::vector<std::pair<std::string, std::string>>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    const bool replaced = std::any_of(overrides.begin(), overrides.end(),
                                      [&](const auto& o) { return o.first == name; });
    if (!replaced) env.push_back(entry);
  }
  for (const auto& [name, value] : overrides) env.push_back(name + "=" + value);
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// fork + exec with a prepared argv/envp (nothing allocated after fork); the child gets SIGTERM
// if the launcher dies, so no rank outlives it.
pid_t spawn(std::vector<std::string> argv, std::vector<std::string> env, bool search_path) {
  std::vector<char*> args = pointers(argv), envp = pointers(env);
  const std::string failed = fmt::format("difftx: error: cannot start '{}'\n", argv[0]);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) fail("cannot start a rank: fork failed: {}", std::strerror(errno));
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);  // the launcher died before prctl took effect
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) ::sigaction(sig, &sa, nullptr);
    if (search_path) {
      ::execvpe(args[0], args.data(), envp.data());
    } else {
      ::execve(args[0], args.data(), envp.data());
    }
    [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, failed.data(), failed.size());
    ::_exit(127);
  }
  return pid;
}

struct Child {
  pid_t pid;
  std::string name;  // "rank 1" or "mpirun"
  bool running = true;
};

// Waits for every child; on the first failure (or a signal to the launcher) stops the others.
// Returns the failure's description, if any.
std::optional<std::string> watch(std::vector<Child>& children) {
  struct sigaction sa {
  }, old_term{}, old_int{}, old_hup{};
  sa.sa_handler = dist_launcher_signal_handler;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, &old_term);
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGHUP, &sa, &old_hup);
  g_signal = 0;
  std::optional<std::string> failure;
  std::optional<Clock::time_point> kill_at;
  bool killed = false;
  auto stop_others = [&] {
    for (const Child& c : children) {
      if (c.running) ::kill(c.pid, SIGTERM);
    }
    kill_at = Clock::now() + kGrace;
  };
  std::size_t running = children.size();
  while (running > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      auto it = std::find_if(children.begin(), children.end(),
                             [&](const Child& c) { return c.pid == pid; });
      if (it == children.end()) continue;
      it->running = false;
      --running;
      const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && !failure) {
        failure = fmt::format("{} (pid {}) {}", it->name, pid, describe_status(status));
        stop_others();
      }
      continue;
    }
    if (pid < 0 && errno != EINTR) break;  // no children left
    if (g_signal != 0 && !failure) {
      failure =
          fmt::format("the launcher received signal {} ({})", int(g_signal), ::strsignal(g_signal));
      stop_others();
    }
    if (kill_at && !killed && Clock::now() > *kill_at) {
      for (const Child& c : children) {
        if (c.running) ::kill(c.pid, SIGKILL);
      }
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGHUP, &old_hup, nullptr);
  return failure;
}

}  // namespace

std::vector<std::string> own_arguments_without(const std::string& name) {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  if (!in) fail("cannot read this program's arguments (/proc/self/cmdline)");
  const std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> all;
  for (std::size_t at = 0; at < raw.size();) {
    const std::size_t end = raw.find('\0', at);
    all.push_back(raw.substr(at, end == std::string::npos ? std::string::npos : end - at));
    if (end == std::string::npos) break;
    at = end + 1;
  }
  std::vector<std::string> out;
  for (std::size_t i = 1; i < all.size(); ++i) {
    if (all[i] == name) {
      ++i;  // skip the value too
    } else if (all[i].rfind(name + "=", 0) != 0) {
      out.push_back(all[i]);
    }
  }
  return out;
}

void launch_local(const LaunchOptions& o) {
  DIFFTX_CHECK(o.nproc >= 1, "--nproc-per-node {}: need at least 1", o.nproc);
  const std::string exe = self_exe();
  std::vector<Child> children;
  if (o.device == "cpu") {
    // mpirun starts the ranks and stops them all when one dies; the launcher reports.
    std::vector<std::string> argv = {o.mpirun,          "-np",       std::to_string(o.nproc),
                                     "--oversubscribe", "--bind-to", "none"};
    if (::geteuid() == 0) argv.push_back("--allow-run-as-root");
    argv.push_back(exe);
    argv.insert(argv.end(), o.args.begin(), o.args.end());
    std::vector<std::pair<std::string, std::string>> vars;
    if (std::getenv("OMP_NUM_THREADS") == nullptr) {
      // The host's cores split among the ranks (each rank runs OpenMP/OpenBLAS loops).
      const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
      vars.emplace_back("OMP_NUM_THREADS", std::to_string(std::max(1u, cores / unsigned(o.nproc))));
    }
    children.push_back({spawn(argv, environment_with(vars), true), "mpirun"});
    const auto failure = watch(children);
    if (failure) {
      fail("the {} CPU ranks did not all finish: {} (the ranks' own messages are above)", o.nproc,
           *failure);
    }
    return;
  }
  if (o.device != "cuda") fail("unknown device '{}' (use cpu or cuda)", o.device);
  const int port = o.master_port > 0 ? o.master_port : pick_free_port();
  for (int r = 0; r < o.nproc; ++r) {
    std::vector<std::string> argv = {exe};
    argv.insert(argv.end(), o.args.begin(), o.args.end());
    const std::vector<std::pair<std::string, std::string>> vars = {
        {"RANK", std::to_string(r)},       {"WORLD_SIZE", std::to_string(o.nproc)},
        {"LOCAL_RANK", std::to_string(r)}, {"LOCAL_WORLD_SIZE", std::to_string(o.nproc)},
        {"MASTER_ADDR", "127.0.0.1"},      {"MASTER_PORT", std::to_string(port)}};
    children.push_back({spawn(argv, environment_with(vars), false), fmt::format("rank {}", r)});
  }
  const auto failure = watch(children);
  if (failure) {
    fail("{}; the other ranks were stopped (their messages are above)", *failure);
  }
}

}  // namespace difftx::dist
