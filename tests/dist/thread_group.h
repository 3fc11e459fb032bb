// Test double: N ranks as threads of one process, with a Communicator whose collectives meet
// at a barrier and compute on each other's host buffers. Lets the data-parallel pieces (flat
// layout, reducer, ZeRO-1 AdamW) be checked at several world sizes without MPI. A collective
// completes at the call (wait() has nothing left to do); `log` records each call in order.
#pragma once

#include <barrier>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "difftx/core/error.h"
#include "difftx/dist/communicator.h"

namespace difftx::dist::testing {

class ThreadHub {
 public:
  explicit ThreadHub(int world) : world_(world), barrier_(world), slots_(std::size_t(world)) {}
  int world() const { return world_; }
  void sync() { barrier_.arrive_and_wait(); }
  std::vector<const void*>& slots() { return slots_; }

 private:
  int world_;
  std::barrier<> barrier_;
  std::vector<const void*> slots_;
};

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(ThreadHub& hub, int rank) : hub_(hub), rank_(rank) {}

  int rank() const override { return rank_; }
  int world() const override { return hub_.world(); }
  const char* name() const override { return "threads"; }
  Device device() const override { return Device::cpu; }

  void all_reduce(Tensor& buf, ReduceOp op) override {
    log.push_back("all_reduce " + std::to_string(buf.numel()));
    const std::int64_t n = buf.numel();
    auto combined = gather_values(buf.raw(), buf.dtype(), n, 0);
    for (std::int64_t i = 0; i < n; ++i) {
      double acc = combined[0][std::size_t(i)];
      for (std::size_t r = 1; r < combined.size(); ++r) {
        const double x = combined[r][std::size_t(i)];
        acc = op == ReduceOp::sum   ? acc + x
              : op == ReduceOp::max ? std::max(acc, x)
                                    : std::min(acc, x);
      }
      store(buf.raw(), buf.dtype(), i, acc);
    }
  }

  void reduce_scatter(const Tensor& send, Tensor& recv) override {
    log.push_back("reduce_scatter " + std::to_string(send.numel()));
    DIFFTX_CHECK(send.numel() == recv.numel() * world(), "reduce_scatter sizes");
    const std::int64_t n = recv.numel();
    auto combined = gather_values(send.raw(), send.dtype(), n, rank_ * n);
    for (std::int64_t i = 0; i < n; ++i) {
      double acc = 0;
      for (const auto& v : combined) acc += v[std::size_t(i)];
      store(recv.raw(), recv.dtype(), i, acc);
    }
  }

  void all_gather(Tensor& buf) override {
    log.push_back("all_gather " + std::to_string(buf.numel()));
    const std::int64_t chunk = buf.numel() / world();
    std::vector<std::vector<double>> chunks;
    for (int r = 0; r < world(); ++r) {
      // Every rank reads chunk r of rank r's buffer.
      hub_.slots()[std::size_t(rank_)] = buf.raw();
      hub_.sync();
      std::vector<double> v(static_cast<std::size_t>(chunk));
      for (std::int64_t i = 0; i < chunk; ++i)
        v[std::size_t(i)] = load(hub_.slots()[std::size_t(r)], buf.dtype(), r * chunk + i);
      hub_.sync();
      chunks.push_back(std::move(v));
    }
    for (int r = 0; r < world(); ++r) {
      for (std::int64_t i = 0; i < chunk; ++i)
        store(buf.raw(), buf.dtype(), r * chunk + i, chunks[std::size_t(r)][std::size_t(i)]);
    }
  }

  void wait() override { log.push_back("wait"); }

  std::vector<double> all_reduce_host(const std::vector<double>& values, ReduceOp op) override {
    Tensor t = Tensor::empty({std::int64_t(values.size())}, DType::f64);
    std::copy(values.begin(), values.end(), t.data<double>());
    const auto kept = log.size();
    all_reduce(t, op);
    log.resize(kept);
    return t.to_double_vector();
  }

  void barrier() override { hub_.sync(); }

  std::vector<std::string> log;

 private:
  static double load(const void* p, DType t, std::int64_t i) {
    switch (t) {
      case DType::f32:
        return static_cast<const float*>(p)[i];
      case DType::f64:
        return static_cast<const double*>(p)[i];
      case DType::i32:
        return static_cast<const std::int32_t*>(p)[i];
      case DType::bf16:
        break;
    }
    fail("thread communicator: dtype");
  }
  static void store(void* p, DType t, std::int64_t i, double v) {
    switch (t) {
      case DType::f32:
        static_cast<float*>(p)[i] = float(v);
        return;
      case DType::f64:
        static_cast<double*>(p)[i] = v;
        return;
      case DType::i32:
        static_cast<std::int32_t*>(p)[i] = std::int32_t(v);
        return;
      case DType::bf16:
        break;
    }
    fail("thread communicator: dtype");
  }
  // Every rank's n values starting at `offset` of its buffer, in rank order (sums in rank order,
  // like a deterministic reduction).
  std::vector<std::vector<double>> gather_values(const void* mine, DType t, std::int64_t n,
                                                 std::int64_t offset) {
    hub_.slots()[std::size_t(rank_)] = mine;
    hub_.sync();
    std::vector<std::vector<double>> out(static_cast<std::size_t>(world()),
                                         std::vector<double>(static_cast<std::size_t>(n)));
    for (int r = 0; r < world(); ++r) {
      for (std::int64_t i = 0; i < n; ++i)
        out[std::size_t(r)][std::size_t(i)] = load(hub_.slots()[std::size_t(r)], t, offset + i);
    }
    hub_.sync();
    return out;
  }

  ThreadHub& hub_;
  int rank_;
};

// Runs body(comm) on `world` threads; rethrows the first exception after all joined.
inline void run_ranks(int world, const std::function<void(ThreadCommunicator&)>& body) {
  ThreadHub hub(world);
  std::vector<std::unique_ptr<ThreadCommunicator>> comms;
  for (int r = 0; r < world; ++r) comms.push_back(std::make_unique<ThreadCommunicator>(hub, r));
  std::mutex mutex;
  std::exception_ptr first;
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        body(*comms[std::size_t(r)]);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!first) first = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace difftx::dist::testing
