// One rank's life in a data-parallel job: joining the job (the communicator for its device and
// launcher), the message it prints when the launcher stops it, and how it ends on an error so
// that no other rank waits for it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "difftx/dist/communicator.h"
#include "difftx/dist/environment.h"
#include "difftx/model/backend.h"

namespace difftx::dist {

// Points this process at its GPU before CUDA starts: CUDA_VISIBLE_DEVICES becomes the
// local_rank-th entry of its current list (or the ordinal local_rank when unset), so the
// backend's device 0 is this rank's GPU. NCCL still reaches the other GPUs of the host
// directly (CUDA >= 10.1 does P2P with devices a process cannot see). Nothing for a single
// process. Errors when the list is shorter than the ranks on this host.
void select_gpu(const DistEnv& env);

// The communicator of this rank: MPI for CPU ranks (the job must come from mpirun or
// `--nproc-per-node`), NCCL for CUDA ranks (id shared by MPI under mpirun, by TCP at
// MASTER_ADDR:MASTER_PORT otherwise). `backend` is this rank's backend (its stream orders
// NCCL's work). Errors name the launcher and device that do not fit together.
std::unique_ptr<Communicator> join_job(const DistEnv& env, Backend& backend,
                                       std::chrono::milliseconds timeout);

// SIGTERM / SIGINT / SIGHUP print "difftx: error: rank r/N: stopped by ..." and exit(1); the
// launcher sends them to the surviving ranks when one rank fails.
void install_stop_message(const DistEnv& env);

// Runs one rank's work. On an Error: prints "difftx: error: <message>" and ends the whole job
// (MPI_Abort under MPI, exit(1) otherwise, which the launcher turns into stopping the others);
// on success, finalises MPI when it was used.
void run_rank(const DistEnv& env, const std::function<void()>& body);

}  // namespace difftx::dist
