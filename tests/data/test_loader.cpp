// Loaders: the seeded permutation, training windows (slices, determinism, epochs, ranks,
// exact save/restore) and evaluation windows (each target counted exactly once).
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "data_test_util.h"
#include "difftx/core/error.h"
#include "difftx/data/loader.h"
#include "difftx/data/permutation.h"
#include "difftx/data/tokenizer.h"

namespace difftx::data {
namespace {

using test_util::TempDir;
constexpr std::uint32_t kVocab = 1u << 20;  // 4-byte ids, so a token can be its own position

// Writes shards whose tokens are base + position, so every token tells where it came from.
void write_positional_shards(const fs::path& dir, const std::vector<std::size_t>& sizes,
                             const std::string& split = "train") {
  for (std::size_t s = 0; s < sizes.size(); ++s) {
    std::vector<std::int32_t> t(sizes[s]);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<std::int32_t>(s * 100000 + i);
    write_shard(dir / fmt::format("{}-{:05}.tokens", split, s), t, kVocab, 1);
  }
}

LoaderOptions options_for(const fs::path& dir, int T, int B, std::uint64_t seed, int rank = 0,
                          int world = 1) {
  LoaderOptions o;
  o.path = dir;
  o.seq_len = T;
  o.batch_size = B;
  o.seed = seed;
  o.rank = rank;
  o.world = world;
  return o;
}

// Start token of every row (which identifies the window).
std::vector<std::int32_t> row_starts(const Batch& b) {
  std::vector<std::int32_t> v;
  for (int r = 0; r < b.batch_size; ++r)
    v.push_back(b.tokens[static_cast<std::size_t>(r) * (b.seq_len + 1)]);
  return v;
}

TEST(DataPermutation, IsABijectionForManySizes) {
  for (std::uint64_t n : {1ull, 2ull, 3ull, 5ull, 16ull, 17ull, 1000ull, 4097ull}) {
    IndexPermutation p(n, 42);
    std::set<std::uint64_t> seen;
    for (std::uint64_t i = 0; i < n; ++i) {
      const std::uint64_t v = p(i);
      ASSERT_LT(v, n);
      seen.insert(v);
    }
    EXPECT_EQ(seen.size(), n) << "n = " << n;
  }
  IndexPermutation a(1000, 1), b(1000, 2);
  int same = 0;
  for (std::uint64_t i = 0; i < 1000; ++i) same += a(i) == b(i);
  EXPECT_LT(same, 20);  // different keys give different orders
}

TEST(DataLoader, WindowsAreSlicesWithShiftedTargets) {
  TempDir dir;
  write_positional_shards(dir.path(), {5000, 3001});
  TrainLoader loader(options_for(dir.path(), 64, 4, 7));
  for (int step = 0; step < 50; ++step) {
    const Batch b = loader.next_batch();
    ASSERT_EQ(b.tokens.size(), 4u * 65u);
    EXPECT_EQ(b.rows, 4);
    EXPECT_EQ(b.counted_targets(), 4u * 64u);
    const auto in = b.inputs();
    const auto tg = b.targets();
    for (int r = 0; r < 4; ++r) {
      const std::int32_t first = b.input(r, 0);
      const std::int32_t shard = first / 100000;
      const std::int32_t pos = first % 100000;
      ASSERT_LE(pos + 64, shard == 0 ? 4999 : 3000);  // window inside its shard
      for (int t = 0; t < 64; ++t) {
        ASSERT_EQ(b.input(r, t), first + t);
        ASSERT_EQ(b.target(r, t), first + t + 1);
        ASSERT_EQ(in[static_cast<std::size_t>(r) * 64 + t], first + t);
        ASSERT_EQ(tg[static_cast<std::size_t>(r) * 64 + t], first + t + 1);
      }
    }
  }
}

TEST(DataLoader, DeterministicFromSeed) {
  TempDir dir;
  write_positional_shards(dir.path(), {20000});
  TrainLoader a(options_for(dir.path(), 32, 8, 123));
  TrainLoader b(options_for(dir.path(), 32, 8, 123));
  TrainLoader c(options_for(dir.path(), 32, 8, 124));
  bool differs = false;
  for (int i = 0; i < 30; ++i) {
    const Batch x = a.next_batch(), y = b.next_batch(), z = c.next_batch();
    ASSERT_EQ(x.tokens, y.tokens);
    differs |= x.tokens != z.tokens;
  }
  EXPECT_TRUE(differs);
}

TEST(DataLoader, EpochVisitsEveryWindowOnceThenReshuffles) {
  TempDir dir;
  write_positional_shards(dir.path(), {1000, 777});
  TrainLoader loader(options_for(dir.path(), 10, 3, 5));
  const std::uint64_t steps = loader.steps_in_epoch();
  ASSERT_GT(steps, 10u);
  std::set<std::int32_t> starts;
  for (std::uint64_t s = 0; s < steps; ++s) {
    for (std::int32_t v : row_starts(loader.next_batch())) starts.insert(v);
  }
  EXPECT_EQ(starts.size(), steps * 3) << "a window repeated within an epoch";
  // Windows are offset + k * T within each shard, with one offset for the epoch.
  std::set<std::int32_t> offsets;
  for (std::int32_t v : starts) offsets.insert((v % 100000) % 10);
  EXPECT_EQ(offsets.size(), 1u);
  EXPECT_EQ(loader.epoch(), 0u);
  const Batch next = loader.next_batch();
  EXPECT_EQ(loader.epoch(), 1u);
  EXPECT_EQ(loader.step(), 1u);
  EXPECT_EQ(next.rows, 3);
}

TEST(DataLoader, RanksSplitEachStepWithoutOverlap) {
  TempDir dir;
  write_positional_shards(dir.path(), {4000, 4000});
  TrainLoader single(options_for(dir.path(), 16, 6, 9));
  TrainLoader r0(options_for(dir.path(), 16, 3, 9, 0, 2));
  TrainLoader r1(options_for(dir.path(), 16, 3, 9, 1, 2));
  EXPECT_EQ(r0.steps_in_epoch(), r1.steps_in_epoch());
  for (int step = 0; step < 20; ++step) {
    const auto a = row_starts(r0.next_batch());
    const auto b = row_starts(r1.next_batch());
    // Together the two ranks draw exactly what one rank with twice the batch draws.
    auto both = a;
    both.insert(both.end(), b.begin(), b.end());
    EXPECT_EQ(both, row_starts(single.next_batch()));
    std::set<std::int32_t> distinct(both.begin(), both.end());
    EXPECT_EQ(distinct.size(), both.size());
  }
}

TEST(DataLoader, SaveAndRestoreGiveTheSameNextBatches) {
  TempDir dir;
  write_positional_shards(dir.path(), {3000, 1500});
  const LoaderOptions opts = options_for(dir.path(), 20, 4, 77);
  TrainLoader original(opts);
  const std::uint64_t steps = original.steps_in_epoch();
  // Save in the middle of an epoch and right before an epoch boundary.
  for (std::uint64_t save_at : {std::uint64_t{5}, steps, steps + 3}) {
    TrainLoader a(opts);
    for (std::uint64_t i = 0; i < save_at; ++i) a.next_batch();
    // Round trip through JSON text, as a checkpoint would store it.
    const std::string saved = a.state().to_json().dump();
    TrainLoader b(opts);
    b.next_batch();  // a restored loader may have been used before
    b.restore(LoaderState::from_json(nlohmann::json::parse(saved)));
    for (int i = 0; i < 2 * static_cast<int>(steps) + 3; ++i) {
      ASSERT_EQ(a.next_batch().tokens, b.next_batch().tokens)
          << "save at " << save_at << ", batch " << i;
    }
    EXPECT_EQ(a.state().to_json(), b.state().to_json());
  }
}

TEST(DataLoader, RestoreRefusesAnotherDatasetOrShape) {
  TempDir dir, other;
  write_positional_shards(dir.path(), {3000});
  write_positional_shards(other.path(), {3001});
  TrainLoader a(options_for(dir.path(), 20, 4, 1));
  a.next_batch();
  const LoaderState s = a.state();
  TrainLoader wrong_data(options_for(other.path(), 20, 4, 1));
  try {
    wrong_data.restore(s);
    FAIL() << "restored onto another data set";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("different data set"), std::string::npos) << e.what();
  }
  TrainLoader wrong_shape(options_for(dir.path(), 10, 4, 1));
  EXPECT_THROW(wrong_shape.restore(s), Error);
  EXPECT_THROW(LoaderState::from_json(nlohmann::json{{"seed", 1}}), Error);
}

TEST(DataLoader, ClearErrorsForBadSetups) {
  TempDir dir;
  write_positional_shards(dir.path(), {100});
  auto message = [&](LoaderOptions o) -> std::string {
    try {
      TrainLoader l(o);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message(options_for(dir.path(), 64, 4, 1)).find("too small"), std::string::npos);
  EXPECT_NE(message(options_for(dir.path(), 8, 1, 1, 2, 2)).find("rank 2 of world size 2"),
            std::string::npos);
  EXPECT_NE(message(options_for(dir.path() / "nope", 8, 1, 1)).find("does not exist"),
            std::string::npos);
  LoaderOptions val = options_for(dir.path(), 8, 1, 1);
  val.split = "val";
  EXPECT_NE(message(val).find("no 'val-*.tokens' shards"), std::string::npos);
  // A single shard file works as well as a folder.
  LoaderOptions file = options_for(dir.path() / "train-00000.tokens", 8, 2, 1);
  EXPECT_NO_THROW(TrainLoader{file});
}

TEST(DataEvalLoader, CoversEveryTargetExactlyOnce) {
  TempDir dir;
  const std::vector<std::size_t> sizes = {1000, 37, 5, 1, 641};
  write_positional_shards(dir.path(), sizes, "val");
  for (int world : {1, 3}) {
    std::map<std::int32_t, int> counted;  // target token (= its position) -> times counted
    std::uint64_t batches = 0;
    for (int rank = 0; rank < world; ++rank) {
      LoaderOptions o = options_for(dir.path(), 64, 4, 0, rank, world);
      o.split = "val";
      EvalLoader loader(o);
      EXPECT_EQ(loader.total_targets(), 999u + 36u + 4u + 0u + 640u);
      if (rank == 0) batches = loader.num_batches();
      EXPECT_EQ(loader.num_batches(), batches) << "ranks must run the same number of batches";
      Batch b;
      std::uint64_t n = 0;
      while (loader.next(b)) {
        ++n;
        for (int r = 0; r < b.batch_size; ++r) {
          for (int t = 0; t < b.seq_len; ++t) {
            if (b.mask[static_cast<std::size_t>(r) * b.seq_len + t] == 0) continue;
            ASSERT_LT(r, b.rows);
            ASSERT_EQ(b.target(r, t), b.input(r, t) + 1);  // a real next token
            counted[b.target(r, t)] += 1;
          }
        }
      }
      EXPECT_EQ(n, batches);
      loader.reset();
      EXPECT_TRUE(loader.next(b));
    }
    std::uint64_t expected = 0;
    for (std::size_t s = 0; s < sizes.size(); ++s) {
      for (std::size_t i = 1; i < sizes[s]; ++i) {
        const auto token = static_cast<std::int32_t>(s * 100000 + i);
        ASSERT_EQ(counted[token], 1) << "target at shard " << s << " position " << i;
        ++expected;
      }
    }
    EXPECT_EQ(counted.size(), expected);
  }
}

TEST(DataEvalLoader, IsDeterministicAndPadsWithMaskedRows) {
  TempDir dir;
  write_positional_shards(dir.path(), {130}, "val");
  LoaderOptions o = options_for(dir.path(), 64, 4, 0);
  o.split = "val";
  EvalLoader a(o), b(o);
  Batch x, y;
  ASSERT_TRUE(a.next(x));
  ASSERT_TRUE(b.next(y));
  EXPECT_EQ(x.tokens, y.tokens);
  EXPECT_EQ(x.mask, y.mask);
  EXPECT_EQ(x.rows, 3);  // windows at 0, 64 and the tail window ending at token 129
  EXPECT_EQ(x.tokens[3 * 65], kPadId);
  EXPECT_FALSE(a.next(x));
}

// Task data: 40 examples of 9 tokens; token = 1000 * example + position; positions 3 and 7 are
// labelled (as MQAR marks the values after its queries).
void write_record_shards(const fs::path& dir, const std::string& split) {
  for (int s = 0; s < 2; ++s) {
    std::vector<std::int32_t> ids;
    std::vector<std::uint8_t> labels;
    for (int e = 0; e < 20; ++e) {
      for (int pos = 0; pos < 9; ++pos) {
        ids.push_back((s * 20 + e) * 1000 + pos);
        labels.push_back(pos == 3 || pos == 7 ? 1 : 0);
      }
    }
    ShardLayout layout;
    layout.label_mask = true;
    layout.record_tokens = 9;
    write_shard(dir / fmt::format("{}-{:05}.tokens", split, s), ids, labels, kVocab, 20, layout);
  }
}

TEST(DataLoader, RecordDataGivesWholeExamplesWithTheirLabels) {
  TempDir dir;
  write_record_shards(dir.path(), "train");
  TrainLoader loader(options_for(dir.path(), 8, 4, 3));
  EXPECT_EQ(loader.windows_in_epoch(), 40u);
  EXPECT_EQ(loader.steps_in_epoch(), 10u);
  std::set<std::int32_t> seen;
  for (int step = 0; step < 10; ++step) {
    const Batch b = loader.next_batch();
    const auto labels = b.labels();
    for (int r = 0; r < 4; ++r) {
      const std::int32_t first = b.input(r, 0);
      ASSERT_EQ(first % 1000, 0) << "a window must start at an example's first token";
      seen.insert(first / 1000);
      for (int t = 0; t < 8; ++t) {
        ASSERT_EQ(b.target(r, t), first + t + 1);
        const bool labelled = t + 1 == 3 || t + 1 == 7;
        ASSERT_EQ(b.mask[static_cast<std::size_t>(r) * 8 + t], labelled ? 1 : 0) << t;
        ASSERT_EQ(labels[static_cast<std::size_t>(r) * 8 + t], labelled ? first + t + 1 : -1);
      }
    }
    EXPECT_EQ(b.counted_targets(), 8u);
  }
  EXPECT_EQ(seen.size(), 40u) << "every example once per epoch";
  // Another seq_len would cut examples: refused with the value to use.
  try {
    TrainLoader wrong(options_for(dir.path(), 16, 4, 3));
    FAIL() << "seq_len 16 accepted for 9-token examples";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("set data.seq_len to 8"), std::string::npos) << e.what();
  }
}

TEST(DataEvalLoader, RecordDataCountsEachLabelOnce) {
  TempDir dir;
  write_record_shards(dir.path(), "val");
  for (int world : {1, 3}) {
    std::map<std::int32_t, int> counted;
    for (int rank = 0; rank < world; ++rank) {
      LoaderOptions o = options_for(dir.path(), 8, 3, 0, rank, world);
      o.split = "val";
      EvalLoader loader(o);
      EXPECT_EQ(loader.total_targets(), 80u);
      EXPECT_EQ(loader.num_windows(), 40u);
      Batch b;
      while (loader.next(b)) {
        const auto labels = b.labels();
        for (std::size_t i = 0; i < labels.size(); ++i) {
          if (labels[i] >= 0) counted[labels[i]] += 1;
        }
      }
    }
    ASSERT_EQ(counted.size(), 80u);
    for (const auto& [token, n] : counted) {
      EXPECT_EQ(n, 1) << token;
      EXPECT_TRUE(token % 1000 == 3 || token % 1000 == 7) << token;
    }
  }
}

TEST(DataLoader, StreamWithLabelMaskMasksUnlabelledTargets) {
  TempDir dir;
  std::vector<std::int32_t> ids(2000);
  std::vector<std::uint8_t> labels(2000);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    ids[i] = static_cast<std::int32_t>(i);
    labels[i] = i % 5 == 0 ? 1 : 0;
  }
  ShardLayout layout;
  layout.label_mask = true;
  write_shard(dir / "train-00000.tokens", ids, labels, kVocab, 1, layout);
  TrainLoader loader(options_for(dir.path(), 20, 3, 1));
  for (int step = 0; step < 20; ++step) {
    const Batch b = loader.next_batch();
    for (int r = 0; r < 3; ++r) {
      for (int t = 0; t < 20; ++t) {
        ASSERT_EQ(b.mask[static_cast<std::size_t>(r) * 20 + t], b.target(r, t) % 5 == 0 ? 1 : 0);
      }
    }
  }
}

}  // namespace
}  // namespace difftx::data
