// Data parallelism in one process (ranks as threads, f64 CPU backends, so differences are
// rounding only): N ranks with B/N rows each follow one process with B rows (losses, gradient
// norms and weights), with ZeRO-1 and with plain all-reduce; the reductions start during the
// backward; a non-finite value seen by one shard owner stops the step on every rank; moments
// gathered at one world size continue the same run at another.
#include <gtest/gtest.h>

#include <cmath>

#include "difftx/cpu/cpu_backend.h"
#include "difftx/dist/data_parallel.h"
#include "difftx/train/optimizer.h"
#include "dist/thread_group.h"
#include "model/model_test_util.h"

namespace difftx::dist {
namespace {

using difftx::testing::random_tokens;
using difftx::testing::tiny_config;
using testing::run_ranks;
using testing::ThreadCommunicator;

constexpr int kBatch = 6, kSeq = 5, kAccum = 2;

OptimSettings optim() {
  OptimSettings o;
  o.grad_clip = 0.5;  // small: clipping is active in these runs
  o.weight_decay = 0.1;
  o.grad_accum = kAccum;
  return o;
}

// The global micro-batch `m` of step `s`: (kBatch, kSeq) inputs and targets.
std::pair<Tensor, Tensor> batch(const ModelConfig& c, int s, int m) {
  const std::uint64_t seed = std::uint64_t(100 * s + 2 * m);
  return {random_tokens(kBatch, kSeq, c.vocab_size, seed),
          random_tokens(kBatch, kSeq, c.vocab_size, seed + 1)};
}

struct Trace {
  std::vector<double> losses, norms;
  std::vector<std::vector<double>> params;  // per step: every parameter, spec order
};

std::vector<double> all_params(Model& m) {
  std::vector<double> out;
  for (std::size_t i = 0; i < m.params().size(); ++i) {
    const auto v = m.params().tensor(i).to_double_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

// One process, the whole batch: the reference.
Trace single_process(const ModelConfig& c, int steps, double lr) {
  auto backend = make_cpu_backend(DType::f64);
  Model model(c, *backend, ParamSet::initialised(c, 7, DType::f64, Device::cpu));
  AdamW opt(model, optim());
  Trace t;
  for (int s = 0; s < steps; ++s) {
    model.zero_grads();
    double loss = 0;
    for (int m = 0; m < kAccum; ++m) {
      auto [in, tg] = batch(c, s, m);
      loss += model.forward_backward(in, tg, 1.0 / kAccum) / kAccum;
    }
    t.losses.push_back(loss);
    t.norms.push_back(opt.step(lr));
    t.params.push_back(all_params(model));
  }
  return t;
}

// One rank's steps [first, last) on its rows of each global batch.
void rank_steps(DataParallel& dp, ThreadCommunicator& comm, const ModelConfig& c, int first,
                int last, double lr, Trace& t) {
  const int rows = kBatch / comm.world();
  for (int s = first; s < last; ++s) {
    dp.model().zero_grads();
    double loss = 0;
    for (int m = 0; m < kAccum; ++m) {
      auto [in, tg] = batch(c, s, m);
      dp.before_micro_batch(m == kAccum - 1);
      loss += dp.model().forward_backward(in.rows(comm.rank() * rows, (comm.rank() + 1) * rows),
                                          tg.rows(comm.rank() * rows, (comm.rank() + 1) * rows),
                                          dp.grad_scale(kAccum)) /
              kAccum;
    }
    t.losses.push_back(dp.finish_gradients(loss));
    t.norms.push_back(dp.step(lr));
    t.params.push_back(all_params(dp.model()));
  }
}

void expect_same_run(const Trace& ref, const Trace& got, std::size_t offset,
                     const std::string& what) {
  for (std::size_t s = 0; s < got.losses.size(); ++s) {
    EXPECT_NEAR(got.losses[s], ref.losses[s + offset], 1e-12) << what << " step " << s + offset;
    EXPECT_NEAR(got.norms[s], ref.norms[s + offset], 1e-11 * ref.norms[s + offset]) << what;
    double worst = 0;
    for (std::size_t i = 0; i < ref.params[s + offset].size(); ++i) {
      worst = std::max(worst, std::abs(got.params[s][i] - ref.params[s + offset][i]));
    }
    EXPECT_LT(worst, 1e-12) << what << " step " << s + offset << ": weights differ";
  }
}

class DataParallelRanks : public ::testing::TestWithParam<std::tuple<int, bool>> {};

TEST_P(DataParallelRanks, NRanksOfBOverNFollowOneProcessOfB) {
  const auto [world, zero] = GetParam();
  const ModelConfig c = tiny_config(AttentionKind::diff_v1, true, RopeStyle::interleaved, false);
  const int steps = 4;
  const double lr = 2e-2;
  const Trace ref = single_process(c, steps, lr);
  for (double n : ref.norms) ASSERT_GT(n, optim().grad_clip) << "the test must exercise clipping";
  std::vector<Trace> traces(static_cast<std::size_t>(world));
  run_ranks(world, [&](ThreadCommunicator& comm) {
    auto backend = make_cpu_backend(DType::f64);
    DataParallel dp(c, *backend, ParamSet::initialised(c, 7, DType::f64, Device::cpu), comm,
                    optim(), {zero, 0.002});  // 2 KB buckets: several per model
    EXPECT_EQ(dp.layout().shards(), zero ? world : 1);
    EXPECT_GT(dp.layout().buckets().size(), 3u);
    rank_steps(dp, comm, c, 0, steps, lr, traces[std::size_t(comm.rank())]);
  });
  for (int r = 0; r < world; ++r) {
    expect_same_run(ref, traces[std::size_t(r)], 0, "rank " + std::to_string(r));
  }
}

INSTANTIATE_TEST_SUITE_P(WorldAndZero, DataParallelRanks,
                         ::testing::Combine(::testing::Values(1, 2, 3), ::testing::Bool()));

TEST(DataParallel, BucketsAreReducedDuringTheBackward) {
  const ModelConfig c = tiny_config(AttentionKind::diff_v2, false);
  run_ranks(2, [&](ThreadCommunicator& comm) {
    auto backend = make_cpu_backend(DType::f64);
    DataParallel dp(c, *backend, ParamSet::initialised(c, 1, DType::f64, Device::cpu), comm,
                    optim(), {true, 0.002});
    const std::size_t buckets = dp.layout().buckets().size();
    auto [in, tg] = batch(c, 0, 0);
    dp.model().zero_grads();
    dp.before_micro_batch(false);  // not the last micro-batch: nothing is reduced
    dp.model().forward_backward(in.rows(comm.rank() * 3, comm.rank() * 3 + 3),
                                tg.rows(comm.rank() * 3, comm.rank() * 3 + 3), 0.25);
    EXPECT_TRUE(comm.log.empty());
    dp.before_micro_batch(true);
    dp.model().forward_backward(in.rows(comm.rank() * 3, comm.rank() * 3 + 3),
                                tg.rows(comm.rank() * 3, comm.rank() * 3 + 3), 0.25);
    // All buckets went out inside forward_backward, before finish_gradients waited.
    ASSERT_EQ(comm.log.size(), buckets);
    for (const auto& entry : comm.log) EXPECT_EQ(entry.rfind("reduce_scatter", 0), 0u) << entry;
    dp.finish_gradients(0.0);
    EXPECT_EQ(comm.log.back(), "wait");
  });
}

TEST(DataParallel, ANonFiniteShardStopsTheStepOnEveryRank) {
  const ModelConfig c = tiny_config(AttentionKind::softmax, false);
  const auto specs = parameter_specs(c);
  std::vector<std::int64_t> numels;
  for (const auto& s : specs) numels.push_back(shape_numel(s.shape));
  run_ranks(3, [&](ThreadCommunicator& comm) {
    auto backend = make_cpu_backend(DType::f64);
    const FlatLayout layout(numels, gradients_ready_order(c), 300, 3);
    Tensor flat = Tensor::zeros({layout.total()}, DType::f64);
    ParamSet views = layout.views(flat, specs);
    const ParamSet init = ParamSet::initialised(c, 2, DType::f64, Device::cpu);
    for (std::size_t i = 0; i < specs.size(); ++i) views.tensor(i).copy_from(init.tensor(i));
    Model model(c, *backend, std::move(views));
    // The reduced gradient shard: finite everywhere, except one element that only rank 1 owns.
    Tensor reduced = Tensor::zeros({layout.shard_size()}, DType::f64);
    for (std::int64_t i = 0; i < reduced.numel(); ++i) reduced.data<double>()[i] = 1e-3;
    if (comm.rank() == 1) reduced.data<double>()[layout.segments(1).back().shard_offset] = NAN;
    ShardedAdamW opt(model, optim(), comm, layout, flat, reduced);
    const auto before = all_params(model);
    const double norm = opt.step(1e-2);
    EXPECT_TRUE(std::isnan(norm)) << "rank " << comm.rank() << " got norm " << norm;
    EXPECT_EQ(all_params(model), before) << "rank " << comm.rank() << " changed its weights";
    EXPECT_EQ(opt.steps_taken(), 0);
    EXPECT_TRUE(comm.log.empty()) << "no all-gather after a refused step";
  });
}

TEST(DataParallel, MomentsGatheredAtOneWorldSizeContinueTheRunAtAnother) {
  const ModelConfig c = tiny_config(AttentionKind::diff_v1, false);
  const double lr = 2e-2;
  const Trace ref = single_process(c, 4, lr);
  ParamSet m, v, weights;
  run_ranks(2, [&](ThreadCommunicator& comm) {
    auto backend = make_cpu_backend(DType::f64);
    DataParallel dp(c, *backend, ParamSet::initialised(c, 7, DType::f64, Device::cpu), comm,
                    optim(), {true, 0.003});
    Trace t;
    rank_steps(dp, comm, c, 0, 2, lr, t);
    ParamSet gm, gv;
    dp.optimizer().gather_moments(0, gm, gv);
    if (comm.rank() == 0) {
      m = std::move(gm);
      v = std::move(gv);
      for (std::size_t i = 0; i < dp.model().params().size(); ++i) {
        weights.add(dp.model().params().name(i), dp.model().params().tensor(i).clone());
      }
    } else {
      EXPECT_EQ(gm.size(), 0u);
    }
  });
  ASSERT_EQ(m.size(), weights.size());
  for (auto [world, zero] : {std::pair{3, true}, std::pair{1, false}, std::pair{2, false}}) {
    std::vector<Trace> traces(static_cast<std::size_t>(world));
    run_ranks(world, [&](ThreadCommunicator& comm) {
      auto backend = make_cpu_backend(DType::f64);
      DataParallel dp(c, *backend, weights, comm, optim(), {zero, 0.001});
      dp.optimizer().load_moments(m, v);
      dp.optimizer().set_steps_taken(2);
      rank_steps(dp, comm, c, 2, 4, lr, traces[std::size_t(comm.rank())]);
    });
    for (int r = 0; r < world; ++r) {
      expect_same_run(ref, traces[std::size_t(r)], 2,
                      "resumed at world " + std::to_string(world) + " rank " + std::to_string(r));
    }
  }
}

TEST(DataParallel, RanksThatStartFromDifferentWeightsAreRefused) {
  const ModelConfig c = tiny_config(AttentionKind::softmax, true);
  try {
    run_ranks(2, [&](ThreadCommunicator& comm) {
      auto backend = make_cpu_backend(DType::f64);
      DataParallel dp(
          c, *backend,
          ParamSet::initialised(c, 1 + std::uint64_t(comm.rank()), DType::f64, Device::cpu), comm,
          optim(), {true, 25});
    });
    ADD_FAILURE() << "different initial weights accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the ranks start from different parameters"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace difftx::dist
