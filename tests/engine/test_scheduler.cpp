// The scheduler's KV block bookkeeping under random add / cancel / finish sequences (no leak, no
// block held twice, preemption and recompute), and its step plans (limits, chunking, admission).
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "difftx/core/error.h"
#include "difftx/engine/scheduler.h"

namespace difftx::engine {
namespace {

Request request(int prompt_len, int max_new, std::int32_t first = 5) {
  Request r;
  for (int i = 0; i < prompt_len; ++i) r.prompt.push_back(first + i % 7);
  r.max_new_tokens = max_new;
  r.sampling.temperature = 0;
  return r;
}

// Checks a plan against the limits and the sequences' state; returns the sampled results the
// model would give (token `next`, never EOS unless eos_every hits).
std::vector<SampledToken> check_plan(const StepPlan& plan, const SchedulerLimits& lim,
                                     std::mt19937_64& rng, int eos_one_in) {
  EXPECT_LE(plan.tokens(), lim.max_step_tokens);
  EXPECT_LE(plan.decode.size() + plan.prefill.size(), std::size_t(lim.max_batch));
  std::set<const Sequence*> seen;
  auto check_chunk = [&](const ScheduledChunk& c, bool decode) {
    EXPECT_TRUE(seen.insert(c.seq).second) << "sequence " << c.seq->id << " twice in a step";
    EXPECT_TRUE(c.seq->running);
    EXPECT_EQ(c.begin, c.seq->cached);
    EXPECT_GE(c.length, 1);
    if (decode) {
      EXPECT_EQ(c.length, 1);
    }
    if (!decode) {
      EXPECT_LE(c.length, lim.prefill_chunk);
    }
    EXPECT_LE(c.begin + c.length, int(c.seq->tokens.size()));
    EXPECT_EQ(c.samples, c.begin + c.length == int(c.seq->tokens.size()));
    // blocks cover every fed position
    EXPECT_GE(std::int64_t(c.seq->blocks.size()) * lim.block_size, c.begin + c.length);
  };
  for (const auto& c : plan.decode) check_chunk(c, true);
  for (const auto& c : plan.prefill) check_chunk(c, false);
  std::vector<SampledToken> out(static_cast<std::size_t>(plan.sampled()));
  std::uniform_int_distribution<int> tok(3, 50);
  for (auto& s : out) {
    s.token = (eos_one_in > 0 && rng() % eos_one_in == 0) ? lim.eos_id : tok(rng);
    s.logprob = -1.0f;
  }
  return out;
}

TEST(Scheduler, RandomWorkloadKeepsBlocksConsistentAndFinishesEverySequenceOnce) {
  for (std::uint64_t seed : {1u, 2u, 3u, 4u}) {
    SCOPED_TRACE(::testing::Message() << "seed " << seed);
    std::mt19937_64 rng(seed);
    SchedulerLimits lim;
    lim.max_batch = 6;
    lim.block_size = 4;
    lim.max_step_tokens = 20;
    lim.prefill_chunk = 7;
    lim.max_seq_len = 40;
    lim.eos_id = 2;
    Scheduler s(lim, /*num_blocks=*/24);        // tight: forces preemption
    std::map<std::uint64_t, int> expected_len;  // id -> prompt length
    std::map<std::uint64_t, int> generated;     // tokens seen per id
    std::map<std::uint64_t, FinishReason> finished;
    std::map<std::uint64_t, int> max_new;
    int added = 0;
    for (int step = 0; step < 400; ++step) {
      if (added < 60 && rng() % 3 == 0) {
        const int plen = 1 + int(rng() % 25), mnew = 1 + int(rng() % 20);
        const std::uint64_t id = s.add(request(plen, mnew));
        expected_len[id] = plen;
        max_new[id] = mnew;
        ++added;
      }
      if (rng() % 11 == 0 && !expected_len.empty()) {
        auto it = expected_len.begin();
        std::advance(it, rng() % expected_len.size());
        s.cancel(it->first);
      }
      ASSERT_NO_THROW(s.check_invariants());
      if (!s.has_work()) continue;
      StepPlan plan = s.plan();
      ASSERT_NO_THROW(s.check_invariants());
      auto sampled = check_plan(plan, lim, rng, 15);
      for (const TokenEvent& e : s.complete(plan, sampled)) {
        ASSERT_EQ(finished.count(e.sequence), 0u) << "event after the end of " << e.sequence;
        if (e.token >= 0) ++generated[e.sequence];
        if (e.finish != FinishReason::none) {
          finished[e.sequence] = e.finish;
          if (e.finish == FinishReason::length) {
            EXPECT_EQ(generated[e.sequence], max_new[e.sequence]);
          }
          if (e.finish == FinishReason::context) {
            EXPECT_EQ(expected_len[e.sequence] + generated[e.sequence], lim.max_seq_len);
          }
          if (e.finish == FinishReason::eos) {
            EXPECT_EQ(e.token, lim.eos_id);
          }
          if (e.finish == FinishReason::cancelled) {
            EXPECT_EQ(e.token, -1);
          }
        }
      }
      ASSERT_NO_THROW(s.check_invariants());
    }
    // Drain: everything finishes, every block returns.
    for (int i = 0; i < 2000 && s.has_work(); ++i) {
      StepPlan plan = s.plan();
      auto sampled = check_plan(plan, lim, rng, 15);
      for (const TokenEvent& e : s.complete(plan, sampled)) {
        if (e.token >= 0) ++generated[e.sequence];
        if (e.finish != FinishReason::none) finished[e.sequence] = e.finish;
      }
      ASSERT_NO_THROW(s.check_invariants());
    }
    EXPECT_FALSE(s.has_work());
    EXPECT_EQ(finished.size(), expected_len.size());
    EXPECT_EQ(s.pool().used(), 0);
    EXPECT_EQ(s.stats().running + s.stats().waiting, 0);
    EXPECT_GT(s.stats().preemptions, 0) << "the pool was meant to run dry";
  }
}

TEST(Scheduler, PreemptsTheNewestAndRecomputesItsTokens) {
  SchedulerLimits lim;
  lim.max_batch = 4;
  lim.block_size = 2;
  lim.max_step_tokens = 64;
  lim.prefill_chunk = 64;
  lim.max_seq_len = 64;
  Scheduler s(lim, /*num_blocks=*/4);
  const auto a = s.add(request(3, 10));  // 2 blocks
  const auto b = s.add(request(3, 10));  // 2 blocks: the pool is full after admission
  StepPlan plan = s.plan();
  ASSERT_EQ(plan.prefill.size(), 2u);
  std::vector<SampledToken> out(2, SampledToken{7, 0.f, {}});
  s.complete(plan, out);  // both at 4 tokens, 3 cached, 2 blocks each: position 3 fits
  plan = s.plan();
  ASSERT_EQ(plan.decode.size(), 2u);
  s.complete(plan, out);  // 5 tokens, 4 cached: position 4 needs a third block each
  plan = s.plan();
  // a gets the last free block? none is free: b (newest) is preempted, a takes one of its blocks
  ASSERT_EQ(plan.decode.size(), 1u);
  EXPECT_EQ(plan.decode[0].seq->id, a);
  EXPECT_EQ(s.stats().preemptions, 1);
  EXPECT_EQ(s.stats().waiting, 1);
  ASSERT_NO_THROW(s.check_invariants());
  std::vector<SampledToken> one(1, SampledToken{8, 0.f, {}});
  s.complete(plan, one);
  // Cancel a: its blocks free, b is re-admitted and prefills its 5 tokens (prompt + 2 generated)
  s.cancel(a);
  plan = s.plan();
  ASSERT_EQ(plan.ended.size(), 1u);
  EXPECT_EQ(plan.ended[0].sequence, a);
  ASSERT_EQ(plan.prefill.size(), 1u);
  EXPECT_EQ(plan.prefill[0].seq->id, b);
  EXPECT_EQ(plan.prefill[0].begin, 0);
  EXPECT_EQ(plan.prefill[0].length, 5);
  EXPECT_TRUE(plan.prefill[0].samples);
  EXPECT_EQ(plan.prefill[0].seq->generated, 2);  // the sampling counter continues
  auto events = s.complete(plan, one);
  ASSERT_EQ(events.size(), 2u);  // a's cancellation, then b's token
  EXPECT_EQ(events[0].finish, FinishReason::cancelled);
  EXPECT_EQ(events[1].sequence, b);
  ASSERT_NO_THROW(s.check_invariants());
}

TEST(Scheduler, ChunksLongPromptsAndDecodesOthersInTheSameStep) {
  SchedulerLimits lim;
  lim.max_batch = 8;
  lim.block_size = 16;
  lim.max_step_tokens = 40;
  lim.prefill_chunk = 32;
  lim.max_seq_len = 512;
  Scheduler s(lim, 100);
  s.add(request(1, 5));    // one-token prompt: a decode row at once
  s.add(request(100, 5));  // chunks of 32, then what the step leaves
  StepPlan plan = s.plan();
  ASSERT_EQ(plan.decode.size(), 1u);
  ASSERT_EQ(plan.prefill.size(), 1u);
  EXPECT_EQ(plan.prefill[0].length, 32);
  EXPECT_FALSE(plan.prefill[0].samples);
  std::vector<SampledToken> out(1, SampledToken{9, 0.f, {}});
  s.complete(plan, out);
  int fed = 32;
  while (fed < 100) {
    plan = s.plan();
    ASSERT_EQ(plan.decode.size(), 1u);  // the short one keeps decoding
    ASSERT_EQ(plan.prefill.size(), 1u);
    EXPECT_EQ(plan.prefill[0].begin, fed);
    fed += plan.prefill[0].length;
    std::vector<SampledToken> res(static_cast<std::size_t>(plan.sampled()),
                                  SampledToken{9, 0.f, {}});
    s.complete(plan, res);
  }
  EXPECT_EQ(s.stats().prompt_tokens, 101);
}

TEST(BlockPool, RefusesDoubleReleaseAndReusesFreedBlocks) {
  BlockPool pool(3);
  std::vector<std::int32_t> a{pool.allocate(), pool.allocate()};
  EXPECT_EQ(a, (std::vector<std::int32_t>{0, 1}));
  std::vector<std::int32_t> copy = a;
  pool.release(a);
  EXPECT_TRUE(a.empty());
  EXPECT_THROW(pool.release(copy), Error);
  EXPECT_EQ(pool.allocate(), 1);  // most recently freed first
  EXPECT_EQ(pool.free(), 2);
}

}  // namespace
}  // namespace difftx::engine
