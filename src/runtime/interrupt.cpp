// SIGINT/SIGTERM handling for long jobs (see interrupt.h). The handler only touches
// async-signal-safe state: sig_atomic_t / lock-free atomics, a fixed path buffer, and the
// system calls write, open, getdents64, unlinkat, rmdir and _exit.
#include "difftx/runtime/interrupt.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>

#include "difftx/core/error.h"

namespace difftx {
namespace {

volatile std::sig_atomic_t g_first_signal = 0;
std::atomic<bool> g_scope_alive{false};
std::atomic<bool> g_partial_set{false};
char g_partial_dir[4096];  // NUL-terminated path of the checkpoint folder being written

struct sigaction g_old_int, g_old_term;

void say(const char* text) {
  const ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

// The kernel's struct linux_dirent64, as getdents64 fills it.
struct DirEntry64 {
  std::uint64_t d_ino;
  std::int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[1];
};

// Deletes the files of the flat folder `dir`, then the folder. Rounds repeat in case another
// thread was still creating a file.
void remove_flat_folder(const char* dir) {
  const int fd = ::open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // already renamed into place (complete) or never created
  for (int round = 0; round < 16; ++round) {
    ::lseek(fd, 0, SEEK_SET);
    alignas(8) char buffer[4096];
    long n;
    while ((n = ::syscall(SYS_getdents64, fd, buffer, sizeof buffer)) > 0) {
      for (long offset = 0; offset < n;) {
        auto* entry = reinterpret_cast<DirEntry64*>(buffer + offset);
        const char* name = entry->d_name;
        if (std::strcmp(name, ".") != 0 && std::strcmp(name, "..") != 0) ::unlinkat(fd, name, 0);
        offset += entry->d_reclen;
      }
    }
    if (::rmdir(dir) == 0) break;
  }
  ::close(fd);
}

extern "C" void on_stop_signal(int signal_number) {
  if (g_first_signal == 0) {
    g_first_signal = signal_number;
    say(signal_number == SIGINT
            ? "\ndifftx: Ctrl-C: finishing the current step, then saving a checkpoint "
              "(Ctrl-C again to stop at once)\n"
            : "\ndifftx: SIGTERM: finishing the current step, then saving a checkpoint "
              "(a second signal stops at once)\n");
    return;
  }
  if (g_partial_set.load()) {
    remove_flat_folder(g_partial_dir);
    say("\ndifftx: stopped at once; the checkpoint being written was removed\n");
  } else {
    say("\ndifftx: stopped at once\n");
  }
  ::_exit(128 + signal_number);
}

}  // namespace

InterruptScope::InterruptScope() {
  if (g_scope_alive.exchange(true)) fail("internal: two live InterruptScope objects");
  g_first_signal = 0;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &action, &g_old_int);
  ::sigaction(SIGTERM, &action, &g_old_term);
}

InterruptScope::~InterruptScope() {
  ::sigaction(SIGINT, &g_old_int, nullptr);
  ::sigaction(SIGTERM, &g_old_term, nullptr);
  g_scope_alive = false;
}

int stop_requested() {
  return g_first_signal;
}

int exit_status_for_signal(int signal_number) {
  return 128 + signal_number;
}

PartialFolderGuard::PartialFolderGuard(const std::filesystem::path& dir) {
  const std::string text = dir.string();
  DIFFTX_CHECK(text.size() < sizeof g_partial_dir, "checkpoint path too long: '{}'", text);
  DIFFTX_CHECK(!g_partial_set.load(), "internal: two checkpoints written at once");
  std::memcpy(g_partial_dir, text.c_str(), text.size() + 1);
  g_partial_set = true;
}

PartialFolderGuard::~PartialFolderGuard() {
  g_partial_set = false;
}

}  // namespace difftx
