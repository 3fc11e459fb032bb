// Crash consistency of training: `difftx train` is killed with SIGKILL at random moments (half of
// the kills aimed inside a checkpoint write: right after the .step_NNNNNNN.partial folder
// appears), resumed with --resume each time, and its final model and optimizer state must equal
// those of an uninterrupted run byte for byte.
//
// DIFFTX_KILL_COUNT (default 4, scripts/crash-test.sh uses 20) sets the number of kills,
// DIFFTX_KILL_SEED the random seed (printed, to replay a failure).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include "safety_test_util.h"

namespace difftx::safety {
namespace {

using Clock = std::chrono::steady_clock;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

// Starts `difftx train` in the background (stdout and stderr to `log`); returns the child pid.
// How a launch treats the run folder: a new run, --resume from the newest complete checkpoint,
// or --overwrite (what difftx asks for when a run died before its first checkpoint).
enum class Start { fresh, resume, overwrite };

pid_t start_training(const fs::path& config, Start start, const fs::path& log) {
  const std::string cli = cli_under_test();
  const std::string config_s = config.string();
  std::vector<std::string> args = {cli, "train", "--quiet", "--config", config_s};
  if (start == Start::resume) args.push_back("--resume");
  if (start == Start::overwrite) args.push_back("--overwrite");
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    // One thread each: deterministic and light on a shared machine.
    ::setenv("OMP_NUM_THREADS", "1", 1);
    ::setenv("OPENBLAS_NUM_THREADS", "1", 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The inode of a path, 0 when it does not exist.
ino_t inode_of(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
}

bool has_complete_checkpoint(const fs::path& run) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(run / "checkpoints", ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step_", 0) == 0 && fs::exists(e.path() / "train_state.safetensors"))
      return true;
  }
  return false;
}

// The newest complete checkpoint's step (0 if none).
int latest_step(const fs::path& run) {
  int step = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(run / "checkpoints", ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step_", 0) == 0 && fs::exists(e.path() / "train_state.safetensors")) {
      step = std::max(step, std::atoi(name.c_str() + 5));
    }
  }
  return step;
}

// Whether a checkpoint was being written when the process died: a .step_NNNNNNN.partial folder
// changed since `since` is left behind.
bool killed_inside_write(const fs::path& run, fs::file_time_type since) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(run / "checkpoints", ec)) {
    if (e.path().filename().string().rfind(".step_", 0) == 0 &&
        fs::last_write_time(e.path(), ec) >= since) {
      return true;
    }
  }
  return false;
}

// Waits until a ".step_*" entry is created in `dir` (inotify), at most `timeout`.
bool wait_for_partial(int inotify_fd, Clock::time_point deadline) {
  char buf[4096] __attribute__((aligned(__alignof__(inotify_event))));
  while (Clock::now() < deadline) {
    pollfd p{inotify_fd, POLLIN, 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (::poll(&p, 1, static_cast<int>(std::max<long>(1, left.count()))) <= 0) continue;
    const ssize_t n = ::read(inotify_fd, buf, sizeof buf);
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      if (ev->len > 0 && std::string(ev->name).rfind(".step_", 0) == 0) return true;
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
    }
  }
  return false;
}

TEST(CrashConsistency, KillNineThenResumeMatchesAnUninterruptedRun) {
  const int kills_wanted = env_int("DIFFTX_KILL_COUNT", 4);
  const unsigned seed =
      static_cast<unsigned>(env_int("DIFFTX_KILL_SEED", int(std::random_device{}() & 0x7fffffff)));
  std::printf("[ crash    ] DIFFTX_KILL_COUNT=%d DIFFTX_KILL_SEED=%u\n", kills_wanted, seed);
  std::mt19937 rng(seed);
  const int steps = std::max(24, 3 * kills_wanted);
  TempDir tmp;
  auto config_for = [&](const std::string& name) {
    json cfg = tiny_config(tmp / name, steps);
    cfg["output"]["checkpoint_every"] = 1;  // a checkpoint write at every step
    cfg["output"]["keep_last"] = 2;
    cfg["train"]["eval_every"] = 8;
    return write_text(tmp / (name + ".json"), cfg.dump(2));
  };

  // The uninterrupted run, timed to place the kills.
  const fs::path ref_cfg = config_for("reference");
  const auto t0 = Clock::now();
  ASSERT_EQ(wait_exit(start_training(ref_cfg, Start::fresh, tmp / "reference.log")), 0)
      << read_file_text(tmp / "reference.log");
  const double total_s = std::chrono::duration<double>(Clock::now() - t0).count();

  const fs::path run = tmp / "killed";
  const fs::path cfg = config_for("killed");
  fs::create_directories(run / "checkpoints");
  const int ino = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT_GE(ino, 0);
  ASSERT_GE(::inotify_add_watch(ino, (run / "checkpoints").c_str(), IN_CREATE), 0);

  int kills = 0, inside_write = 0, launches = 0;
  bool finished = false;
  while (!finished && launches < 4 * kills_wanted + 10) {
    ++launches;
    const auto launched = fs::file_time_type::clock::now();
    const double remaining_s = total_s * (steps - latest_step(run)) / steps;
    // Killed before its first checkpoint completed, the run has metrics.jsonl and nothing to
    // resume: difftx refuses a plain relaunch there and asks for --overwrite.
    const Start start = has_complete_checkpoint(run)        ? Start::resume
                        : fs::exists(run / "metrics.jsonl") ? Start::overwrite
                                                            : Start::fresh;
    const ino_t old_dir = inode_of(run / "checkpoints");
    const pid_t pid = start_training(cfg, start, tmp / "killed.log");
    if (start == Start::overwrite) {
      // --overwrite moves the checkpoints folder away (the watch goes with it): watch the new one.
      const auto until = Clock::now() + std::chrono::seconds(30);
      while (inode_of(run / "checkpoints") == old_dir && Clock::now() < until)
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      ::inotify_add_watch(ino, (run / "checkpoints").c_str(), IN_CREATE);
    }
    if (kills == kills_wanted) {
      const int rc = wait_exit(pid);
      ASSERT_EQ(rc, 0) << read_file_text(tmp / "killed.log");
      finished = true;
      break;
    }
    const bool aim_at_write = kills % 2 == 1;
    const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(2 * total_s + 5));
    if (aim_at_write) {
      char drain[4096];
      while (::read(ino, drain, sizeof drain) > 0) {
      }
      if (wait_for_partial(ino, deadline)) {
        std::this_thread::sleep_for(
            std::chrono::microseconds(std::uniform_int_distribution<int>(0, 4000)(rng)));
      }
    } else {
      std::uniform_real_distribution<double> when(0.0, 0.9 * remaining_s);
      std::this_thread::sleep_for(std::chrono::duration<double>(when(rng)));
    }
    if (::kill(pid, SIGKILL) == 0) {
      const int rc = wait_exit(pid);
      if (rc == 128 + SIGKILL) {
        ++kills;
        if (killed_inside_write(run, launched)) ++inside_write;
        continue;
      }
      ASSERT_EQ(rc, 0) << "training failed on its own:\n" << read_file_text(tmp / "killed.log");
    } else {
      ASSERT_EQ(wait_exit(pid), 0) << read_file_text(tmp / "killed.log");
    }
    // The run completed before the kill landed: start over so every kill interrupts work.
    fs::remove_all(run);
    fs::create_directories(run / "checkpoints");
    ASSERT_GE(::inotify_add_watch(ino, (run / "checkpoints").c_str(), IN_CREATE), 0);
    kills = inside_write = 0;
  }
  ::close(ino);
  ASSERT_TRUE(finished) << "could not place " << kills_wanted << " kills";
  std::printf(
      "[ crash    ] %d kills (%d inside a checkpoint write), %d launches, reference run %.1f s\n",
      kills, inside_write, launches, total_s);

  const std::string last = fmt::format("checkpoints/step_{:07d}", steps);
  for (const char* file : {"model.safetensors", "train_state.safetensors"}) {
    const auto a = read_file_bytes(tmp / "reference" / last / file);
    const auto b = read_file_bytes(run / last / file);
    EXPECT_TRUE(a == b) << file << " differs after " << kills << " kills and resumes (seed " << seed
                        << ")";
  }
}

}  // namespace
}  // namespace difftx::safety
