// The NCCL communicator: one GPU per rank, collectives on a communication stream of their own
// that waits (CUDA events) for the compute stream's work issued before each call, so gradient
// buckets travel while the backward goes on. The NCCL communicator is non-blocking
// (ncclConfig_t.blocking = 0): initialisation and every wait poll ncclCommGetAsyncError and the
// completion event against the deadline, and a failure or timeout calls ncclCommAbort before
// raising the Error, so no rank hangs on a peer that is gone.
//
// Only CUDA builds define these functions (src/dist/nccl/); CPU builds refuse in
// make_communicator (worker.h).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include "difftx/dist/communicator.h"

namespace difftx::dist {

// A fresh ncclUniqueId (128 bytes), made by rank 0 and shared with the others (MPI broadcast
// under mpirun, rendezvous_share otherwise).
std::vector<std::byte> nccl_unique_id();

// Joins the communicator of `world` ranks as `rank` on the current CUDA device; compute_stream
// is the backend's cudaStream_t (Backend::native_stream()).
std::unique_ptr<Communicator> make_nccl_communicator(int rank, int world,
                                                     const std::vector<std::byte>& unique_id,
                                                     void* compute_stream,
                                                     std::chrono::milliseconds timeout);

}  // namespace difftx::dist
