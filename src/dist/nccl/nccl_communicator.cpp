// NCCL communicator (nccl_communicator.h): a non-blocking NCCL communicator, a communication
// stream ordered after the compute stream by events, CUDA-event timing of each collective, and
// deadline-polled waits that abort the communicator when a peer is gone.
#include "difftx/dist/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "difftx/core/error.h"

namespace difftx::dist {
namespace {

using Clock = std::chrono::steady_clock;

void cuda_check(cudaError_t e, const std::string& who, const char* call) {
  if (e != cudaSuccess) fail("{}: {} failed: {}", who, call, cudaGetErrorString(e));
}

ncclDataType_t nccl_type(const Tensor& t, const char* what) {
  switch (t.dtype()) {
    case DType::f32:
      return ncclFloat32;
    case DType::f64:
      return ncclFloat64;
    case DType::i32:
      return ncclInt32;
    case DType::bf16:
      return ncclBfloat16;
  }
  fail("{}: unsupported dtype {}", what, t.describe());
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return ncclSum;
    case ReduceOp::max:
      return ncclMax;
    case ReduceOp::min:
      return ncclMin;
  }
  return ncclSum;
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(int rank, int world, const std::vector<std::byte>& id, void* compute_stream,
                   std::chrono::milliseconds timeout)
      : rank_(rank), world_(world), compute_(static_cast<cudaStream_t>(compute_stream)) {
    set_timeout(timeout);
    DIFFTX_CHECK(id.size() == sizeof(ncclUniqueId), "{}: the NCCL id has {} bytes, not {}", who(),
                 id.size(), sizeof(ncclUniqueId));
    DIFFTX_CHECK(compute_ != nullptr, "{}: NCCL needs the CUDA backend's stream", who());
    cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), who(),
               "cudaStreamCreateWithFlags");
    cuda_check(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming), who(), "cudaEventCreate");
    cuda_check(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming), who(), "cudaEventCreate");
    ncclUniqueId unique;
    std::memcpy(&unique, id.data(), sizeof unique);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    const ncclResult_t r = ncclCommInitRankConfig(&comm_, world, unique, rank, &config);
    if (r != ncclSuccess && r != ncclInProgress) {
      fail("{}: ncclCommInitRankConfig failed: {} ({})", who(), ncclGetErrorString(r),
           ncclGetLastError(nullptr));
    }
    // Joining waits for every rank to start (CUDA contexts, NCCL's topology search): at least
    // as long as the bootstrap's deadline, whatever the collectives' timeout.
    settle("ncclCommInitRankConfig (joining the other ranks)",
           std::max<std::chrono::milliseconds>(timeout, std::chrono::minutes(5)));
    scalars_ = Tensor::empty({kScalars}, DType::f64, Device::cuda);
  }

  ~NcclCommunicator() override {
    if (comm_ != nullptr && !broken_) {
      // Orderly end: finalize (non-blocking: poll briefly), then destroy; errors are moot here.
      ncclCommFinalize(comm_);
      const auto until = Clock::now() + std::chrono::seconds(10);
      ncclResult_t state = ncclInProgress;
      while (ncclCommGetAsyncError(comm_, &state) == ncclSuccess && state == ncclInProgress &&
             Clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      if (state == ncclSuccess) {
        ncclCommDestroy(comm_);
      } else {
        ncclCommAbort(comm_);
      }
    }
    for (auto& t : timed_) release(t);
    for (cudaEvent_t e : pool_) cudaEventDestroy(e);
    cudaEventDestroy(ready_);
    cudaEventDestroy(done_);
    cudaStreamDestroy(stream_);
  }

  int rank() const override { return rank_; }
  int world() const override { return world_; }
  const char* name() const override { return "nccl"; }
  Device device() const override { return Device::cuda; }

  void all_reduce(Tensor& buf, ReduceOp op) override {
    check_tensor(buf, "all_reduce");
    issue(&stats_.all_reduce, double(buf.nbytes()), "ncclAllReduce", [&] {
      return ncclAllReduce(buf.raw(), buf.raw(), std::size_t(buf.numel()),
                           nccl_type(buf, "all_reduce"), nccl_op(op), comm_, stream_);
    });
  }

  void reduce_scatter(const Tensor& send, Tensor& recv) override {
    check_tensor(send, "reduce_scatter");
    check_tensor(recv, "reduce_scatter");
    DIFFTX_CHECK(send.dtype() == recv.dtype() && send.numel() == recv.numel() * world_,
                 "{}: reduce_scatter of {} into {}", who(), send.describe(), recv.describe());
    issue(&stats_.reduce_scatter, double(send.nbytes()), "ncclReduceScatter", [&] {
      return ncclReduceScatter(send.raw(), recv.raw(), std::size_t(recv.numel()),
                               nccl_type(send, "reduce_scatter"), ncclSum, comm_, stream_);
    });
  }

  void all_gather(Tensor& buf) override {
    check_tensor(buf, "all_gather");
    DIFFTX_CHECK(buf.numel() % world_ == 0, "{}: all_gather of {} over {} ranks", who(),
                 buf.describe(), world_);
    const std::int64_t chunk = buf.numel() / world_;
    const auto* mine =
        static_cast<const char*>(buf.raw()) + std::size_t(rank_ * chunk) * dtype_size(buf.dtype());
    issue(&stats_.all_gather, double(buf.nbytes()) / world_, "ncclAllGather", [&] {
      return ncclAllGather(mine, buf.raw(), std::size_t(chunk), nccl_type(buf, "all_gather"), comm_,
                           stream_);
    });
  }

  void wait() override { drain(true); }

  std::vector<double> all_reduce_host(const std::vector<double>& values, ReduceOp op) override {
    DIFFTX_CHECK(values.size() <= std::size_t(kScalars), "{}: {} host values (at most {})", who(),
                 values.size(), kScalars);
    if (values.empty()) return {};
    Tensor host = Tensor::empty({std::int64_t(values.size())}, DType::f64);  // (n)
    std::copy(values.begin(), values.end(), host.data<double>());
    Tensor dev = scalars_.rows(0, std::int64_t(values.size()));
    dev.copy_from(host);  // synchronous on the compute stream
    issue(nullptr, 0, "ncclAllReduce", [&] {
      return ncclAllReduce(dev.raw(), dev.raw(), values.size(), ncclFloat64, nccl_op(op), comm_,
                           stream_);
    });
    drain(false);
    return dev.to_double_vector();
  }

  void barrier() override { all_reduce_host({0.0}, ReduceOp::sum); }

 private:
  static constexpr std::int64_t kScalars = 64;
  struct Timed {
    cudaEvent_t start, stop;
    CollectiveStats* stats;
    double bytes;
  };

  void check_tensor(const Tensor& t, const char* what) const {
    DIFFTX_CHECK(!broken_, "{}: {} on a communicator that already failed", who(), what);
    DIFFTX_CHECK(t.device() == Device::cuda, "{}: {} of {}: NCCL takes CUDA tensors", who(), what,
                 t.describe());
  }

  cudaEvent_t event() {
    if (!pool_.empty()) {
      cudaEvent_t e = pool_.back();
      pool_.pop_back();
      return e;
    }
    cudaEvent_t e = nullptr;
    cuda_check(cudaEventCreate(&e), who(), "cudaEventCreate");
    return e;
  }
  void release(Timed& t) {
    pool_.push_back(t.start);
    pool_.push_back(t.stop);
  }

  // Orders the call after the compute stream's work so far, times it, and settles NCCL's
  // non-blocking enqueue.
  template <typename Call>
  void issue(CollectiveStats* stats, double bytes, const char* what, Call call) {
    cuda_check(cudaEventRecord(ready_, compute_), who(), "cudaEventRecord");
    cuda_check(cudaStreamWaitEvent(stream_, ready_, 0), who(), "cudaStreamWaitEvent");
    Timed t{nullptr, nullptr, stats, bytes};
    if (stats != nullptr) {
      t.start = event();
      t.stop = event();
      cuda_check(cudaEventRecord(t.start, stream_), who(), "cudaEventRecord");
    }
    const ncclResult_t r = call();
    if (r != ncclSuccess && r != ncclInProgress) abort_with(fmt::format("{} failed", what), r);
    settle(what, timeout());
    if (stats != nullptr) {
      cuda_check(cudaEventRecord(t.stop, stream_), who(), "cudaEventRecord");
      timed_.push_back(t);
    }
  }

  // Polls the communicator until it leaves ncclInProgress (deadline).
  void settle(const char* what, std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    ncclResult_t state = ncclInProgress;
    while (true) {
      const ncclResult_t r = ncclCommGetAsyncError(comm_, &state);
      if (r != ncclSuccess) abort_with(fmt::format("{}: ncclCommGetAsyncError", what), r);
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) abort_with(what, state);
      if (Clock::now() > deadline) timed_out(what, limit);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  void drain(bool count_wait) {
    const auto start = Clock::now();
    const auto deadline = start + timeout();
    cuda_check(cudaEventRecord(done_, stream_), who(), "cudaEventRecord");
    auto nap = std::chrono::microseconds(5);
    while (true) {
      const cudaError_t q = cudaEventQuery(done_);
      if (q == cudaSuccess) break;
      if (q != cudaErrorNotReady) cuda_check(q, who(), "cudaEventQuery");
      ncclResult_t state = ncclSuccess;
      ncclCommGetAsyncError(comm_, &state);
      if (state != ncclSuccess && state != ncclInProgress) abort_with("a collective", state);
      if (Clock::now() > deadline) timed_out("waiting for the collectives", timeout());
      std::this_thread::sleep_for(nap);
      nap = std::min(nap * 2, std::chrono::microseconds(200));
    }
    for (Timed& t : timed_) {
      float ms = 0;
      cuda_check(cudaEventElapsedTime(&ms, t.start, t.stop), who(), "cudaEventElapsedTime");
      t.stats->calls += 1;
      t.stats->bytes += t.bytes;
      t.stats->busy_ms += ms;
      release(t);
    }
    timed_.clear();
    if (count_wait) {
      stats_.wait_ms += std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    }
  }

  [[noreturn]] void abort_with(const std::string& what, ncclResult_t r) {
    const std::string detail = ncclGetLastError(comm_);
    broken_ = true;
    if (comm_ != nullptr) ncclCommAbort(comm_);
    fail("{}: NCCL {} : {}{}{}; stopping the job (another rank may have died: see its message)",
         who(), what, ncclGetErrorString(r), detail.empty() ? "" : " - ", detail);
  }

  [[noreturn]] void timed_out(const char* what, std::chrono::milliseconds limit) {
    broken_ = true;
    if (comm_ != nullptr) ncclCommAbort(comm_);
    fail(
        "{}: NCCL {} did not complete within {:.0f} s: another rank stopped responding "
        "(crashed, hung or was killed); stopping the job. If ranks are only slow (a large "
        "checkpoint, a slow disk), raise --dist-timeout",
        who(), what, std::chrono::duration<double>(timeout()).count());
  }

  int rank_, world_;
  cudaStream_t compute_ = nullptr;
  cudaStream_t stream_ = nullptr;
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  ncclComm_t comm_ = nullptr;
  bool broken_ = false;
  std::vector<Timed> timed_;
  std::vector<cudaEvent_t> pool_;
  Tensor scalars_;  // (kScalars) f64 on the device, for all_reduce_host
};

}  // namespace

std::vector<std::byte> nccl_unique_id() {
  ncclUniqueId id;
  const ncclResult_t r = ncclGetUniqueId(&id);
  if (r != ncclSuccess) {
    fail("rank 0: ncclGetUniqueId failed: {} ({})", ncclGetErrorString(r),
         ncclGetLastError(nullptr));
  }
  std::vector<std::byte> out(sizeof id);
  std::memcpy(out.data(), &id, sizeof id);
  return out;
}

std::unique_ptr<Communicator> make_nccl_communicator(int rank, int world,
                                                     const std::vector<std::byte>& unique_id,
                                                     void* compute_stream,
                                                     std::chrono::milliseconds timeout) {
  return std::make_unique<NcclCommunicator>(rank, world, unique_id, compute_stream, timeout);
}

}  // namespace difftx::dist
