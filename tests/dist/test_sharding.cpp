// Data sharding of data-parallel training: over one epoch the ranks of a job draw every
// training window at most once, all of them but the leftover that does not fill a global
// batch, and exactly the windows one process draws with the whole global batch; the validation
// windows of all ranks count every target once. Windows are identified by their first token:
// the shard holds 0, 1, 2, ... so a row starting with t is the window starting at t.
#include <gtest/gtest.h>

#include <map>
#include <numeric>
#include <set>

#include "data/data_test_util.h"
#include "difftx/data/loader.h"
#include "difftx/data/shard.h"

namespace difftx::dist {
namespace {

using data::test_util::TempDir;

constexpr int kSeq = 8;

// Two shards of consecutive ids (the second continues the first's numbering).
std::filesystem::path write_counting_shards(const TempDir& dir) {
  const std::uint32_t n0 = 1013, n1 = 777;
  std::vector<std::int32_t> a(n0), b(n1);
  std::iota(a.begin(), a.end(), 0);
  std::iota(b.begin(), b.end(), std::int32_t(n0));
  data::write_shard(dir / "train-00000.tokens", a, n0 + n1, 1);
  data::write_shard(dir / "train-00001.tokens", b, n0 + n1, 1);
  data::write_shard(dir / "val-00000.tokens", a, n0 + n1, 1);
  data::write_shard(dir / "val-00001.tokens", b, n0 + n1, 1);
  return dir.path();
}

data::LoaderOptions options(const std::filesystem::path& path, int rank, int world, int batch) {
  data::LoaderOptions o;
  o.path = path;
  o.seq_len = kSeq;
  o.batch_size = batch;
  o.seed = 11;
  o.rank = rank;
  o.world = world;
  return o;
}

// Every window start each rank draws in one epoch, in (step, rank, row) order.
std::vector<std::int32_t> epoch_of(const std::filesystem::path& path, int world, int per_rank) {
  std::vector<data::TrainLoader> loaders;
  for (int r = 0; r < world; ++r) loaders.emplace_back(options(path, r, world, per_rank));
  std::vector<std::int32_t> starts;
  const std::uint64_t steps = loaders[0].steps_in_epoch();
  for (std::uint64_t s = 0; s < steps; ++s) {
    for (auto& l : loaders) {
      const data::Batch b = l.next_batch();
      EXPECT_EQ(l.epoch(), 0u);
      for (int row = 0; row < b.batch_size; ++row) starts.push_back(b.input(row, 0));
    }
  }
  return starts;
}

TEST(DataSharding, EveryWindowOncePerEpochAndTheSameWindowsAsOneProcess) {
  TempDir dir;
  const auto path = write_counting_shards(dir);
  const int global = 12;
  const std::vector<std::int32_t> one = epoch_of(path, 1, global);
  for (int world : {1, 2, 3, 4}) {
    const std::vector<std::int32_t> many = epoch_of(path, world, global / world);
    const std::set<std::int32_t> distinct(many.begin(), many.end());
    EXPECT_EQ(distinct.size(), many.size()) << world << " ranks drew a window twice";
    // All windows of the epoch but the leftover (< one global batch) are drawn.
    const data::TrainLoader probe(options(path, 0, world, global / world));
    EXPECT_EQ(many.size(), probe.steps_in_epoch() * std::uint64_t(global));
    EXPECT_LT(probe.windows_in_epoch() - many.size(), std::uint64_t(global));
    // Each window lies inside one shard and starts on the epoch's grid.
    for (std::int32_t start : many) {
      const bool first = start < 1013;
      const std::int32_t in_shard = first ? start : start - 1013;
      EXPECT_LE(in_shard + kSeq + 1, first ? 1013 : 777) << "window crosses a shard end";
    }
    // The same windows, in the same order, as one process drawing the whole global batch.
    EXPECT_EQ(many, one) << world << " ranks";
  }
}

TEST(DataSharding, ValidationTargetsAreCountedOnceOverTheRanks) {
  TempDir dir;
  const auto path = write_counting_shards(dir);
  for (int world : {1, 2, 3}) {
    std::map<std::int32_t, int> counted;  // target token (= its position) -> times counted
    for (int r = 0; r < world; ++r) {
      data::EvalLoader loader(options(path, r, world, 5));
      data::Batch b;
      while (loader.next(b)) {
        for (int row = 0; row < b.batch_size; ++row) {
          for (int t = 0; t < b.seq_len; ++t) {
            if (b.mask[std::size_t(row) * b.seq_len + t]) ++counted[b.target(row, t)];
          }
        }
      }
    }
    // Every token but each shard's first is a target, counted exactly once.
    EXPECT_EQ(counted.size(), std::size_t(1013 - 1 + 777 - 1)) << world << " ranks";
    for (const auto& [token, times] : counted) ASSERT_EQ(times, 1) << "token " << token;
    EXPECT_EQ(counted.count(0), 0u);
    EXPECT_EQ(counted.count(1013), 0u);
  }
}

}  // namespace
}  // namespace difftx::dist
