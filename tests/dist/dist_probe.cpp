// One rank of the communicator tests: started by mpirun (CPU ranks, MPI; test_dist_mpi) or
// with torchrun-style variables (CUDA ranks, NCCL; test_dist_nccl). Each rank checks the
// collectives against values it computes itself, and the deadline path. Prints "probe ok rank
// r/N" and exits 0, or names the first wrong value and exits 1.
//   dist_probe <cpu|cuda> collectives       every collective, f32 / f64 / i32, odd sizes
//   dist_probe <cpu|cuda> hang <rank> <ms>  <rank> skips an all-reduce and sleeps; the others
//                                           must fail with the timeout message (run_rank's path)
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <string>
#include <thread>

#include "difftx/core/error.h"
#include "difftx/dist/environment.h"
#include "difftx/dist/mpi_communicator.h"
#include "difftx/dist/worker.h"
#include "difftx/runtime/backend_factory.h"

namespace difftx::dist {
namespace {

// Rank r's value at element i (exact in f32 for the sizes used).
double value(int r, std::int64_t i) {
  return double((r + 1) * 1000 + i % 997);
}

// Formats the message only on failure (the checks run over millions of elements).
#define PROBE_EXPECT(ok, ...)                                       \
  do {                                                              \
    if (!(ok)) difftx::fail("probe: {}", fmt::format(__VA_ARGS__)); \
  } while (0)

void check_collectives(Communicator& comm) {
  const int R = comm.rank(), W = comm.world();
  for (DType dtype : {DType::f32, DType::f64, DType::i32}) {
    for (std::int64_t n : {std::int64_t(1), std::int64_t(7), std::int64_t(300007)}) {
      // all_reduce: sum, max, min.
      for (ReduceOp op : {ReduceOp::sum, ReduceOp::max, ReduceOp::min}) {
        Tensor t = Tensor::empty({n}, DType::f64);
        for (std::int64_t i = 0; i < n; ++i) t.data<double>()[i] = value(R, i);
        Tensor typed = t.to_dtype(dtype).to(comm.device());
        comm.all_reduce(typed, op);
        comm.wait();
        const auto got = typed.to_double_vector();
        for (std::int64_t i = 0; i < n; ++i) {
          double want = op == ReduceOp::sum ? 0 : value(0, i);
          for (int r = 0; r < W; ++r) {
            want = op == ReduceOp::sum   ? want + value(r, i)
                   : op == ReduceOp::max ? std::max(want, value(r, i))
                                         : std::min(want, value(r, i));
          }
          PROBE_EXPECT(got[std::size_t(i)] == want, "all_reduce {} {} n={} element {}: {} != {}",
                       reduce_op_name(op), dtype_name(dtype), n, i, got[std::size_t(i)], want);
        }
      }
      // reduce_scatter of (W * n) into (n), then all_gather of (W * n) in place.
      Tensor send = Tensor::empty({W * n}, DType::f64);
      for (std::int64_t i = 0; i < W * n; ++i) send.data<double>()[i] = value(R, i);
      Tensor send_typed = send.to_dtype(dtype).to(comm.device());
      Tensor recv = Tensor::zeros({n}, dtype, comm.device());
      comm.reduce_scatter(send_typed, recv);
      Tensor gathered = Tensor::zeros({W * n}, DType::f64);
      for (std::int64_t i = 0; i < n; ++i) gathered.data<double>()[R * n + i] = -value(R, i);
      Tensor gathered_typed = gathered.to_dtype(dtype).to(comm.device());
      comm.all_gather(gathered_typed);
      comm.wait();  // two collectives in flight, completed together
      const auto rs = recv.to_double_vector();
      for (std::int64_t i = 0; i < n; ++i) {
        double want = 0;
        for (int r = 0; r < W; ++r) want += value(r, R * n + i);
        PROBE_EXPECT(rs[std::size_t(i)] == want, "reduce_scatter {} n={} element {}: {} != {}",
                     dtype_name(dtype), n, i, rs[std::size_t(i)], want);
      }
      const auto ag = gathered_typed.to_double_vector();
      for (std::int64_t i = 0; i < W * n; ++i) {
        const double want = -value(int(i / n), i % n);
        PROBE_EXPECT(ag[std::size_t(i)] == want, "all_gather {} n={} element {}: {} != {}",
                     dtype_name(dtype), n, i, ag[std::size_t(i)], want);
      }
    }
  }
  const auto host = comm.all_reduce_host({double(R), 1.0}, ReduceOp::sum);
  PROBE_EXPECT(host[0] == W * (W - 1) / 2.0 && host[1] == W, "all_reduce_host: {} {}", host[0],
               host[1]);
  if (auto* mpi = dynamic_cast<MpiCommunicator*>(&comm)) {
    std::vector<std::byte> bytes(128, std::byte(R));
    mpi->broadcast_bytes(bytes, W - 1);
    for (std::byte b : bytes) PROBE_EXPECT(b == std::byte(W - 1), "broadcast_bytes");
  }
  comm.barrier();
  const CommStats& s = comm.stats();
  PROBE_EXPECT(
      s.all_reduce.calls == 3 * 3 * 3 && s.reduce_scatter.calls == 9 && s.all_gather.calls == 9,
      "stats: {} all-reduces, {} reduce-scatters, {} all-gathers", s.all_reduce.calls,
      s.reduce_scatter.calls, s.all_gather.calls);
}

}  // namespace
}  // namespace difftx::dist

int main(int argc, char** argv) {
  using namespace difftx::dist;
  const std::string device = argc > 1 ? argv[1] : "";
  const std::string mode = argc > 2 ? argv[2] : "";
  const DistEnv env = detect_environment();
  install_stop_message(env);
  try {
    if (device == "cuda") select_gpu(env);
    run_rank(env, [&] {
      if ((device != "cpu" && device != "cuda") ||
          !(mode == "collectives" || (mode == "hang" && argc == 5))) {
        difftx::fail("usage: dist_probe <cpu|cuda> collectives | hang <rank> <timeout ms>");
      }
      auto backend = difftx::make_backend(device);
      const auto timeout = std::chrono::milliseconds(mode == "hang" ? std::stoi(argv[4]) : 120000);
      auto comm = join_job(env, *backend, timeout);
      if (mode == "collectives") {
        check_collectives(*comm);
      } else {
        const int hung = std::stoi(argv[3]);
        comm->barrier();
        if (comm->rank() == hung) {
          // Silent for longer than the others' deadline, then gone (under mpirun, MPI_Abort of
          // the others stops it first).
          std::this_thread::sleep_for(5 * timeout);
          fmt::print("hung rank {} leaves\n", comm->rank());
          std::fflush(stdout);
          ::_exit(3);
        }
        difftx::Tensor t = difftx::Tensor::zeros({1024}, difftx::DType::f32, comm->device());
        comm->all_reduce(t, ReduceOp::sum);
        comm->wait();  // must time out
      }
      fmt::print("probe ok rank {}/{}\n", comm->rank(), comm->world());
      std::fflush(stdout);
    });
  } catch (const difftx::Error& e) {
    fmt::print(stderr, "difftx: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
