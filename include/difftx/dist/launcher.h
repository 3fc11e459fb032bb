// `difftx train --nproc-per-node N`: starts N ranks of this same program on this host and
// watches them.
//   CPU ranks: through mpirun (Open MPI), which also stops every rank when one dies;
//   CUDA ranks: N child processes, one per GPU (LOCAL_RANK = GPU index), with torchrun-style
//               variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR =
//               127.0.0.1, MASTER_PORT) for the TCP exchange of the NCCL id.
// When a rank fails (non-zero exit or a signal) the launcher names it, sends SIGTERM to the
// others (each prints why it stops), SIGKILL after a grace period, and fails; SIGINT / SIGTERM
// to the launcher are passed on the same way.
#pragma once

#include <string>
#include <vector>

namespace difftx::dist {

struct LaunchOptions {
  int nproc = 1;                  // ranks on this host
  std::string device = "cpu";     // "cpu" or "cuda"
  int master_port = 0;            // CUDA: rendezvous port; 0 picks a free one
  std::vector<std::string> args;  // the ranks' arguments (after the program name)
  std::string mpirun = "mpirun";  // CPU: the Open MPI launcher to run
};

// This process's own arguments (from /proc/self/cmdline, program name dropped) without the
// option `name` and its value ("--name V" or "--name=V").
std::vector<std::string> own_arguments_without(const std::string& name);

// Runs the ranks and waits for them all; returns when every rank succeeded, throws an Error
// naming the first failure otherwise.
void launch_local(const LaunchOptions& options);

}  // namespace difftx::dist
