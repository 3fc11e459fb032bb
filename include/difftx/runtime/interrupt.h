// Stopping long jobs cleanly on Ctrl-C (SIGINT) and SIGTERM.
//
// While an InterruptScope is alive, the first SIGINT or SIGTERM only records a stop request
// (and prints one line saying so); the job polls stop_requested() between units of work
// (training steps), finishes the current one, saves and exits with 128 + the signal number
// (130 for SIGINT, 143 for SIGTERM). A second signal ends the process at once with that same
// code; if a checkpoint is being written then (a PartialFolderGuard is alive), its partial
// folder is removed first, so no half-written checkpoint is left behind.
#pragma once

#include <filesystem>

namespace difftx {

class InterruptScope {
 public:
  // Installs the handlers and clears an earlier stop request; restores the previous
  // handlers on destruction. Scopes do not nest (a second live scope throws an Error).
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
};

// 0, or the signal number (SIGINT, SIGTERM) of the first stop request since the live
// InterruptScope was made.
int stop_requested();

// The exit status for a job stopped by `signal_number`: 128 + signal_number.
int exit_status_for_signal(int signal_number);

// Marks `dir` as a checkpoint folder being written: while the guard lives, a second signal
// deletes the files in `dir` (a flat folder) and `dir` itself before exiting. One at a time.
class PartialFolderGuard {
 public:
  explicit PartialFolderGuard(const std::filesystem::path& dir);
  ~PartialFolderGuard();
  PartialFolderGuard(const PartialFolderGuard&) = delete;
  PartialFolderGuard& operator=(const PartialFolderGuard&) = delete;
};

}  // namespace difftx
