// The MPI communicator (Open MPI): collectives of CPU ranks over MPI_COMM_WORLD, issued as MPI
// non-blocking calls and completed by polling MPI_Testall against the deadline, so a dead or
// hung peer ends in an Error instead of a hang. Also the bootstrap of NCCL under mpirun
// (broadcast of its unique id).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include "difftx/dist/communicator.h"

namespace difftx::dist {

class MpiCommunicator final : public Communicator {
 public:
  // Initialises MPI once per process (MPI_THREAD_FUNNELED: only the main thread calls MPI) and
  // wraps MPI_COMM_WORLD; MPI errors are returned, not fatal. The process must have been
  // started by mpirun (or `difftx train --nproc-per-node N --device cpu`).
  static std::unique_ptr<MpiCommunicator> create();
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  const char* name() const override { return "mpi"; }
  Device device() const override { return Device::cpu; }

  void all_reduce(Tensor& buf, ReduceOp op) override;
  void reduce_scatter(const Tensor& send, Tensor& recv) override;
  void all_gather(Tensor& buf) override;
  void progress() override;
  void wait() override;

  std::vector<double> all_reduce_host(const std::vector<double>& values, ReduceOp op) override;
  void barrier() override;

  // Rank `root`'s bytes to every rank (all pass buffers of the same size).
  void broadcast_bytes(std::vector<std::byte>& bytes, int root);

 private:
  struct Pending;
  MpiCommunicator(int rank, int world);
  void track(void* request, const char* what, std::size_t bytes, CollectiveStats* stats);
  void drain(bool count_wait);

  int rank_ = 0;
  int world_ = 1;
  std::vector<Pending> pending_;
};

// Whether MPI was initialised in this process (and not yet finalised).
bool mpi_active();
// Ends the whole job from an error path: MPI_Abort on MPI_COMM_WORLD (never returns) when MPI
// is active; otherwise returns.
void mpi_abort_job(int code);
// Normal end of an MPI process (MPI_Finalize), when MPI is active.
void mpi_finalize();

}  // namespace difftx::dist
