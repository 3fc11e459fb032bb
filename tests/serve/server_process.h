// A `difftx serve` child process for the end-to-end tests: started on a free port (--port 0;
// the port is read from its "listening on" line), waited for until /health answers 200, and
// always ended (SIGTERM, then SIGKILL after a grace period) so that no test leaves it behind.
#pragma once

#include <httplib.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace difftx::serve::testing {

class ServerProcess {
 public:
  // Starts `difftx serve --port 0 <args>`; throws if it does not report ready within `timeout`.
  ServerProcess(const std::string& cli, std::vector<std::string> args,
                const std::filesystem::path& log,
                std::chrono::seconds timeout = std::chrono::seconds(120))
      : log_(log) {
    std::vector<std::string> argv = {cli, "serve", "--port", "0"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      FILE* out = std::fopen(log.c_str(), "w");
      if (out) {
        dup2(fileno(out), STDOUT_FILENO);
        dup2(fileno(out), STDERR_FILENO);
      }
      std::vector<char*> raw;
      for (auto& a : argv) raw.push_back(a.data());
      raw.push_back(nullptr);
      execv(cli.c_str(), raw.data());
      _exit(127);
    }
    const auto until = std::chrono::steady_clock::now() + timeout;
    const std::regex listening("listening on http://[^:]+:([0-9]+)");
    while (std::chrono::steady_clock::now() < until) {
      if (!running()) throw std::runtime_error("difftx serve exited early:\n" + log_text());
      std::smatch m;
      const std::string text = log_text();
      if (port_ == 0 && std::regex_search(text, m, listening)) port_ = std::stoi(m[1]);
      if (port_ > 0) {
        httplib::Client c("127.0.0.1", port_);
        c.set_read_timeout(2, 0);
        auto res = c.Get("/health");
        if (res && res->status == 200) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    stop();
    throw std::runtime_error("difftx serve did not become ready:\n" + log_text());
  }

  ~ServerProcess() { stop(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log_text() const {
    std::ifstream in(log_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  bool running() {
    if (exited_) return false;
    int status = 0;
    const pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      status_ = status;
      return false;
    }
    return true;
  }

  void signal(int sig) {
    if (running()) kill(pid_, sig);
  }

  // Waits up to `timeout` for the process to exit; returns its exit code (-1: still running or
  // killed by a signal).
  int wait_exit(std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (running() && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!exited_) return -1;
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
  }

  void stop() {
    if (pid_ <= 0 || !running()) return;
    kill(pid_, SIGTERM);
    if (wait_exit(std::chrono::seconds(20)) == -1 && running()) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status_, 0);
      exited_ = true;
    }
  }

 private:
  std::filesystem::path log_;
  pid_t pid_ = -1;
  int port_ = 0;
  bool exited_ = false;
  int status_ = 0;
};

}  // namespace difftx::serve::testing
