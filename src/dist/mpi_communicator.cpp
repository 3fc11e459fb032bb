// MPI communicator: non-blocking MPI collectives on host tensors, completed by polling with a
// deadline (see mpi_communicator.h).
#include "difftx/dist/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <thread>

#include "difftx/core/error.h"

namespace difftx::dist {
namespace {

using Clock = std::chrono::steady_clock;

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return fmt::format("MPI error {}", code);
  return std::string(text, static_cast<std::size_t>(len));
}

void check(int code, const std::string& who, const char* call) {
  if (code != MPI_SUCCESS) fail("{}: {} failed: {}", who, call, mpi_error_text(code));
}

MPI_Datatype mpi_type(const Tensor& t, const char* what) {
  switch (t.dtype()) {
    case DType::f32:
      return MPI_FLOAT;
    case DType::f64:
      return MPI_DOUBLE;
    case DType::i32:
      return MPI_INT;
    case DType::bf16:
      break;
  }
  fail("{}: MPI collectives take f32, f64 or i32 tensors, got {}", what, t.describe());
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return MPI_SUM;
    case ReduceOp::max:
      return MPI_MAX;
    case ReduceOp::min:
      return MPI_MIN;
  }
  return MPI_SUM;
}

int count_of(std::int64_t n, const char* what) {
  DIFFTX_CHECK(n <= std::numeric_limits<int>::max(),
               "{}: {} elements exceed MPI's int count; use smaller buckets (--bucket-mb)", what,
               n);
  return static_cast<int>(n);
}

}  // namespace

struct MpiCommunicator::Pending {
  MPI_Request request;
  const char* what;
  std::size_t bytes;
  Clock::time_point issued;
  CollectiveStats* stats;  // null for bookkeeping (scalars, barriers, broadcasts)
};

bool mpi_active() {
  int initialised = 0, finalised = 0;
  MPI_Initialized(&initialised);
  MPI_Finalized(&finalised);
  return initialised && !finalised;
}

void mpi_abort_job(int code) {
  if (mpi_active()) MPI_Abort(MPI_COMM_WORLD, code);
}

void mpi_finalize() {
  if (mpi_active()) MPI_Finalize();
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::create() {
  if (!mpi_active()) {
    int provided = 0;
    const int code = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    if (code != MPI_SUCCESS) fail("MPI_Init_thread failed: {}", mpi_error_text(code));
    if (provided < MPI_THREAD_FUNNELED) {
      fail("this MPI library offers no MPI_THREAD_FUNNELED support (level {})", provided);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  }
  int rank = 0, world = 1;
  check(MPI_Comm_rank(MPI_COMM_WORLD, &rank), "mpi", "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &world), "mpi", "MPI_Comm_size");
  return std::unique_ptr<MpiCommunicator>(new MpiCommunicator(rank, world));
}

MpiCommunicator::MpiCommunicator(int rank, int world) : rank_(rank), world_(world) {}

MpiCommunicator::~MpiCommunicator() = default;

void MpiCommunicator::track(void* request, const char* what, std::size_t bytes,
                            CollectiveStats* stats) {
  pending_.push_back({*static_cast<MPI_Request*>(request), what, bytes, Clock::now(), stats});
}

void MpiCommunicator::all_reduce(Tensor& buf, ReduceOp op) {
  DIFFTX_CHECK(buf.device() == Device::cpu, "{}: all_reduce of {}: MPI takes host tensors", who(),
               buf.describe());
  MPI_Request req;
  check(MPI_Iallreduce(MPI_IN_PLACE, buf.raw(), count_of(buf.numel(), "all_reduce"),
                       mpi_type(buf, "all_reduce"), mpi_op(op), MPI_COMM_WORLD, &req),
        who(), "MPI_Iallreduce");
  track(&req, "all_reduce", buf.nbytes(), &stats_.all_reduce);
}

void MpiCommunicator::reduce_scatter(const Tensor& send, Tensor& recv) {
  DIFFTX_CHECK(send.device() == Device::cpu && recv.device() == Device::cpu &&
                   send.dtype() == recv.dtype() && send.numel() == recv.numel() * world_,
               "{}: reduce_scatter of {} into {}: need host tensors of one dtype, the first "
               "{} times as long",
               who(), send.describe(), recv.describe(), world_);
  MPI_Request req;
  check(MPI_Ireduce_scatter_block(send.raw(), recv.raw(), count_of(recv.numel(), "reduce_scatter"),
                                  mpi_type(send, "reduce_scatter"), MPI_SUM, MPI_COMM_WORLD, &req),
        who(), "MPI_Ireduce_scatter_block");
  track(&req, "reduce_scatter", send.nbytes(), &stats_.reduce_scatter);
}

void MpiCommunicator::all_gather(Tensor& buf) {
  DIFFTX_CHECK(buf.device() == Device::cpu && buf.numel() % world_ == 0,
               "{}: all_gather of {}: need a host tensor whose length divides by {}", who(),
               buf.describe(), world_);
  MPI_Request req;
  const MPI_Datatype type = mpi_type(buf, "all_gather");
  check(MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf.raw(),
                       count_of(buf.numel() / world_, "all_gather"), type, MPI_COMM_WORLD, &req),
        who(), "MPI_Iallgather");
  track(&req, "all_gather", buf.nbytes() / std::size_t(world_), &stats_.all_gather);
}

void MpiCommunicator::progress() {
  // Completed requests are retired here too, so their time is measured close to completion.
  for (auto it = pending_.begin(); it != pending_.end();) {
    int done = 0;
    check(MPI_Test(&it->request, &done, MPI_STATUS_IGNORE), who(), "MPI_Test");
    if (!done) {
      ++it;
      continue;
    }
    if (it->stats != nullptr) {
      it->stats->calls += 1;
      it->stats->bytes += double(it->bytes);
      it->stats->busy_ms +=
          std::chrono::duration<double, std::milli>(Clock::now() - it->issued).count();
    }
    it = pending_.erase(it);
  }
}

void MpiCommunicator::wait() {
  drain(true);
}

void MpiCommunicator::drain(bool count_wait) {
  const auto start = Clock::now();
  const auto deadline = start + timeout();
  auto nap = std::chrono::microseconds(20);
  while (true) {
    progress();
    if (pending_.empty()) break;
    if (Clock::now() > deadline) {
      const Pending& p = pending_.front();
      fail(
          "{}: {} of {:.2f} MB did not complete within {:.0f} s: another rank stopped "
          "responding (crashed, hung or was killed); stopping the job. If ranks are only slow "
          "(a large checkpoint, a slow disk), raise --dist-timeout",
          who(), p.what, double(p.bytes) / 1e6, std::chrono::duration<double>(timeout()).count());
    }
    std::this_thread::sleep_for(nap);
    nap = std::min(nap * 2, std::chrono::microseconds(1000));
  }
  if (count_wait) {
    stats_.wait_ms += std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  }
}

std::vector<double> MpiCommunicator::all_reduce_host(const std::vector<double>& values,
                                                     ReduceOp op) {
  Tensor t = Tensor::empty({std::int64_t(values.size())}, DType::f64);
  std::copy(values.begin(), values.end(), t.data<double>());
  MPI_Request req;
  check(MPI_Iallreduce(MPI_IN_PLACE, t.raw(), count_of(t.numel(), "all_reduce"), MPI_DOUBLE,
                       mpi_op(op), MPI_COMM_WORLD, &req),
        who(), "MPI_Iallreduce");
  track(&req, "all_reduce of host values", t.nbytes(), nullptr);
  drain(false);
  return t.to_double_vector();
}

void MpiCommunicator::barrier() {
  MPI_Request req;
  check(MPI_Ibarrier(MPI_COMM_WORLD, &req), who(), "MPI_Ibarrier");
  track(&req, "barrier", 0, nullptr);
  drain(false);
}

void MpiCommunicator::broadcast_bytes(std::vector<std::byte>& bytes, int root) {
  MPI_Request req;
  check(MPI_Ibcast(bytes.data(), count_of(std::int64_t(bytes.size()), "broadcast"), MPI_BYTE, root,
                   MPI_COMM_WORLD, &req),
        who(), "MPI_Ibcast");
  track(&req, "broadcast", bytes.size(), nullptr);
  drain(false);
}

}  // namespace difftx::dist
