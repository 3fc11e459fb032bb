// Collective communication among the ranks of one data-parallel job: the interface the
// gradient reducer, the sharded optimizer and the trainer use, with two implementations: MPI
// (CPU ranks; mpi_communicator.h) and NCCL (one GPU per rank; nccl_communicator.h).
//
// Conventions:
//   - collectives run on contiguous tensors of the communicator's device and are issued in the
//     same order on every rank (the caller's duty: the reducer walks buckets in a fixed order);
//   - the tensor calls are asynchronous: they return once the work is queued and complete in the
//     order issued; wait() returns when all of it is done and the backend may read the results;
//   - nothing blocks forever: every wait polls against a deadline (timeout()) and, when a peer
//     is gone or silent, fails with an Error naming the collective, the rank and the timeout.
//     After such an error the communicator is unusable (the job ends: see dist/worker.h).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "difftx/core/tensor.h"

namespace difftx::dist {

enum class ReduceOp { sum, max, min };

// Time and volume of the tensor collectives since the last reset_stats(). busy_ms is each
// collective's own duration: NCCL, CUDA events around it on the communication stream (it may
// overlap the backward); MPI, from issue to the poll that saw it complete.
struct CollectiveStats {
  int calls = 0;
  double bytes = 0;  // per rank, sent into the collective
  double busy_ms = 0;
};
struct CommStats {
  CollectiveStats all_reduce, reduce_scatter, all_gather;
  double wait_ms = 0;  // host time blocked in wait(): communication the compute did not hide
};

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world() const = 0;
  virtual const char* name() const = 0;  // "mpi", "nccl"
  virtual Device device() const = 0;     // where the tensors of the tensor calls live

  // ---- asynchronous tensor collectives (f32, f64 or i32; the device above)
  // buf (n): every rank's buf becomes op over all ranks' buf.
  virtual void all_reduce(Tensor& buf, ReduceOp op) = 0;
  // send (world * n) -> recv (n): recv = sum over ranks of send's chunk [rank * n, rank * n + n).
  virtual void reduce_scatter(const Tensor& send, Tensor& recv) = 0;
  // buf (world * n): chunk r (elements [r * n, r * n + n)) of every rank's buf becomes rank r's
  // chunk r; this rank's own chunk is read in place.
  virtual void all_gather(Tensor& buf) = 0;
  // Lets queued work advance (MPI progresses non-blocking collectives only inside MPI calls);
  // cheap, never blocks. The reducer calls it between backward layers.
  virtual void progress() {}
  // Blocks (polling, with the deadline) until every collective issued so far is complete.
  virtual void wait() = 0;

  // ---- blocking host helpers (deadline too)
  // Element-wise op over all ranks of `values` (the same length on every rank).
  virtual std::vector<double> all_reduce_host(const std::vector<double>& values, ReduceOp op) = 0;
  virtual void barrier() = 0;

  const CommStats& stats() const { return stats_; }
  void reset_stats() { stats_ = CommStats(); }

  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }
  // "rank r/N" for messages.
  std::string who() const;

 protected:
  CommStats stats_;

 private:
  std::chrono::milliseconds timeout_{std::chrono::minutes(10)};
};

const char* reduce_op_name(ReduceOp op);

}  // namespace difftx::dist
