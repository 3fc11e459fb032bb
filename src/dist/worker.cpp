// Joining a data-parallel job, the stop message and the error path of one rank (worker.h).
#include "difftx/dist/worker.h"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "difftx/core/error.h"
#include "difftx/dist/mpi_communicator.h"
#include "difftx/dist/nccl_communicator.h"
#include "difftx/dist/rendezvous.h"

namespace difftx::dist {
namespace {

char g_stop_message[256];
std::size_t g_stop_length = 0;

extern "C" void dist_stop_signal_handler(int) {
  // Async-signal-safe: one write of the preformatted line, then _exit.
  if (g_stop_length > 0) {
    [[maybe_unused]] const ssize_t n = ::write(STDERR_FILENO, g_stop_message, g_stop_length);
  }
  ::_exit(1);
}

}  // namespace

void select_gpu(const DistEnv& env) {
  if (env.local_world <= 1 && env.local_rank == 0) return;
  const char* current = std::getenv("CUDA_VISIBLE_DEVICES");
  std::string chosen = std::to_string(env.local_rank);
  if (current != nullptr && *current != '\0') {
    std::vector<std::string> entries;
    std::string list = current;
    for (std::size_t at = 0; at <= list.size();) {
      const std::size_t comma = std::min(list.find(',', at), list.size());
      entries.push_back(list.substr(at, comma - at));
      at = comma + 1;
    }
    if (int(entries.size()) < env.local_world) {
      fail(
          "rank {}/{}: CUDA_VISIBLE_DEVICES='{}' lists {} GPU(s) for {} ranks on this host: list "
          "one GPU per rank (or unset it)",
          env.rank, env.world, list, entries.size(), env.local_world);
    }
    chosen = entries[std::size_t(env.local_rank)];
  }
  ::setenv("CUDA_VISIBLE_DEVICES", chosen.c_str(), 1);
}

std::unique_ptr<Communicator> join_job(const DistEnv& env, Backend& backend,
                                       std::chrono::milliseconds timeout) {
  if (backend.device() == Device::cpu) {
    if (env.launch != Launch::mpirun) {
      fail(
          "rank {}/{}: CPU ranks communicate through MPI: start the job with mpirun or `difftx "
          "train --nproc-per-node N --device cpu` (a {} suits CUDA ranks only)",
          env.rank, env.world, launch_name(env.launch));
    }
    auto comm = MpiCommunicator::create();
    comm->set_timeout(timeout);
    DIFFTX_CHECK(comm->rank() == env.rank && comm->world() == env.world,
                 "MPI says rank {}/{}, the environment rank {}/{}", comm->rank(), comm->world(),
                 env.rank, env.world);
    return comm;
  }
#ifdef DIFFTX_WITH_NCCL
  std::vector<std::byte> id;
  if (env.launch == Launch::mpirun) {
    auto mpi = MpiCommunicator::create();
    mpi->set_timeout(std::max<std::chrono::milliseconds>(timeout, std::chrono::minutes(5)));
    id = env.rank == 0 ? nccl_unique_id() : std::vector<std::byte>(128);
    mpi->broadcast_bytes(id, 0);
  } else {
    RendezvousOptions r;
    r.address = env.master_addr;
    r.port = env.master_port;
    r.rank = env.rank;
    r.world = env.world;
    r.timeout = std::max<std::chrono::milliseconds>(timeout, std::chrono::minutes(5));
    id = rendezvous_share(r, env.rank == 0 ? nccl_unique_id() : std::vector<std::byte>());
  }
  return make_nccl_communicator(env.rank, env.world, id, backend.native_stream(), timeout);
#else
  fail(
      "rank {}/{}: {} ranks need NCCL, and this difftx was built without CUDA (configure with "
      "`cmake --preset cuda`)",
      env.rank, env.world, device_name(backend.device()));
#endif
}

void install_stop_message(const DistEnv& env) {
  const int n = std::snprintf(g_stop_message, sizeof g_stop_message,
                              "difftx: error: rank %d/%d: stopped by a signal from the launcher "
                              "(another rank failed, or the job was cancelled; the first error "
                              "above names the cause)\n",
                              env.rank, env.world);
  g_stop_length = n > 0 ? std::min<std::size_t>(std::size_t(n), sizeof g_stop_message - 1) : 0;
  struct sigaction sa {};
  sa.sa_handler = dist_stop_signal_handler;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);
}

void run_rank(const DistEnv& env, const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& e) {
    if (env.world > 1) {
      const std::string message = e.what();
      const std::string prefix =
          message.rfind("rank ", 0) == 0 ? "" : fmt::format("rank {}/{}: ", env.rank, env.world);
      std::fflush(stdout);
      fmt::print(stderr, "difftx: error: {}{}\n", prefix, message);
      std::fflush(stderr);
      mpi_abort_job(1);  // kills every rank of an MPI job; returns when MPI is not in use
      ::_exit(1);        // the launcher stops the other ranks; skip teardown that could block
    }
    throw;
  } catch (const std::exception& e) {
    if (env.world > 1) {
      std::fflush(stdout);
      fmt::print(stderr, "difftx: internal error: rank {}/{}: {}\n", env.rank, env.world, e.what());
      std::fflush(stderr);
      mpi_abort_job(2);
      ::_exit(2);
    }
    throw;
  }
  mpi_finalize();
}

}  // namespace difftx::dist
