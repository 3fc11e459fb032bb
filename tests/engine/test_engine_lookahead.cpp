// Look-ahead (a decode step queued before the previous step's tokens are known): the
// scheduler's plan_ahead rows, refusals and discarded rows, and the engine on the CPU backend
// giving the same tokens, log-probabilities and ends with and without it under staggered
// arrivals, EOS, length and context ends, seeded sampling, cancellation and a pool that runs dry.
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "difftx/cpu/cpu_backend.h"
#include "difftx/engine/engine.h"
#include "difftx/engine/scheduler.h"
#include "difftx/model/model.h"
#include "model/model_test_util.h"

namespace difftx::engine {
namespace {

Request request(int prompt_len, int max_new) {
  Request r;
  for (int i = 0; i < prompt_len; ++i) r.prompt.push_back(5 + i % 7);
  r.max_new_tokens = max_new;
  r.sampling.temperature = 0;
  return r;
}

std::vector<SampledToken> tokens(const StepPlan& plan, std::int32_t token) {
  std::vector<SampledToken> out(static_cast<std::size_t>(plan.sampled()));
  for (auto& s : out) s.token = token;
  return out;
}

TEST(SchedulerLookahead, PlansFedRowsAndDiscardsThoseOfEndedSequences) {
  SchedulerLimits lim;
  lim.max_batch = 4;
  lim.block_size = 4;
  lim.max_seq_len = 40;
  lim.eos_id = 2;
  Scheduler s(lim, 10);
  const auto a = s.add(request(3, 10));
  s.add(request(3, 2));  // ends by length after its second token
  StepPlan prefill = s.plan();
  ASSERT_EQ(prefill.prefill.size(), 2u);
  EXPECT_TRUE(s.plan_ahead(prefill).empty()) << "only a decode-only step is followed ahead";
  s.complete(prefill, tokens(prefill, 9));

  StepPlan step1 = s.plan();
  ASSERT_EQ(step1.decode.size(), 2u);
  const Sequence* seq_a = step1.decode[0].seq;
  ASSERT_EQ(seq_a->id, a);
  EXPECT_EQ(step1.decode[0].begin, 3);
  EXPECT_EQ(step1.decode[0].counter, 1);
  const std::int64_t used = s.pool().used();
  StepPlan step2 = s.plan_ahead(step1);
  // The second sequence ends by length with step1's token: no row for it.
  ASSERT_EQ(step2.decode.size(), 1u);
  EXPECT_EQ(step2.decode[0].seq, seq_a);
  EXPECT_EQ(step2.decode[0].begin, 4);
  EXPECT_EQ(step2.decode[0].fed_from, 0);
  EXPECT_EQ(step2.decode[0].counter, 2);
  EXPECT_EQ(s.pool().used(), used + 1) << "position 4 starts a block";
  auto events = s.complete(step1, tokens(step1, 9));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].finish, FinishReason::length);
  ASSERT_NO_THROW(s.check_invariants());

  StepPlan step3 = s.plan_ahead(step2);
  ASSERT_EQ(step3.decode.size(), 1u);
  EXPECT_EQ(step3.decode[0].begin, 5);
  EXPECT_EQ(step3.decode[0].fed_from, 0);
  EXPECT_EQ(s.stats().lookahead_steps, 2);
  // step2 samples EOS: the sequence ends, and step3's row (already queued) is discarded.
  events = s.complete(step2, tokens(step2, lim.eos_id));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].finish, FinishReason::eos);
  EXPECT_FALSE(s.has_work());
  EXPECT_TRUE(s.complete(step3, tokens(step3, 9)).empty());
  EXPECT_EQ(s.pool().used(), 0);
  ASSERT_NO_THROW(s.check_invariants());
}

TEST(SchedulerLookahead, RefusesWhatOnlyPlanCanDecide) {
  SchedulerLimits lim;
  lim.max_batch = 4;
  lim.block_size = 4;
  lim.max_seq_len = 40;
  auto decoding = [&](Scheduler& s) {  // a decode-only step of the running sequences
    StepPlan p = s.plan();
    s.complete(p, tokens(p, 9));
    return s.plan();
  };
  {  // a request waits for admission
    Scheduler s(lim, 10);
    s.add(request(3, 10));
    StepPlan p = decoding(s);
    s.add(request(3, 10));
    EXPECT_TRUE(s.plan_ahead(p).empty());
  }
  {  // a cancel is pending
    Scheduler s(lim, 10);
    const auto id = s.add(request(3, 10));
    StepPlan p = decoding(s);
    s.cancel(id);
    EXPECT_TRUE(s.plan_ahead(p).empty());
  }
  {  // the next position needs a block and the pool is dry (plan() would preempt)
    Scheduler s(lim, 1);
    s.add(request(3, 10));
    StepPlan p = decoding(s);  // position 3: the last slot of the only block
    EXPECT_TRUE(s.plan_ahead(p).empty());
    EXPECT_EQ(s.pool().used(), 1);
  }
}

// The engine driven the same way twice: requests join at given calls of step(), some are
// cancelled at given calls; each sequence's events are recorded.
struct Stream {
  std::vector<std::int32_t> tokens;
  std::vector<float> logprobs;
  std::vector<std::vector<TokenLogprob>> top;
  FinishReason finish = FinishReason::none;
};

struct Script {
  std::vector<Request> requests;
  std::vector<int> join_call;
  std::map<int, int> cancel_at_call;  // call -> request index
};

std::vector<Stream> drive(Engine& engine, const Script& script) {
  std::vector<Stream> out(script.requests.size());
  std::map<std::uint64_t, std::size_t> index;
  std::vector<std::uint64_t> ids(script.requests.size(), 0);
  std::size_t next = 0;
  for (int call = 0; call < 5000; ++call) {
    while (next < script.requests.size() && script.join_call[next] <= call) {
      ids[next] = engine.add(script.requests[next]);
      index[ids[next]] = next;
      ++next;
    }
    auto c = script.cancel_at_call.find(call);
    std::size_t cancelled = script.requests.size();  // none
    if (c != script.cancel_at_call.end() && ids[std::size_t(c->second)] != 0 &&
        out[std::size_t(c->second)].finish == FinishReason::none) {
      engine.cancel(ids[std::size_t(c->second)]);
      cancelled = std::size_t(c->second);
    }
    if (!engine.has_work() && next == script.requests.size()) break;
    for (const TokenEvent& e : engine.step()) {
      Stream& s = out[index.at(e.sequence)];
      EXPECT_EQ(s.finish, FinishReason::none) << "event after the end of " << e.sequence;
      if (e.token >= 0) {
        s.tokens.push_back(e.token);
        s.logprobs.push_back(e.logprob);
        s.top.push_back(e.top);
      }
      s.finish = e.finish;
    }
    if (cancelled < out.size()) {  // engine.h: the next step() reports it, with no token after
      EXPECT_EQ(out[cancelled].finish, FinishReason::cancelled)
          << "request " << cancelled << " cancelled before call " << call;
    }
  }
  EXPECT_FALSE(engine.has_work());
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
  return out;
}

TEST(EngineLookahead, GivesTheSameStreamsAsSynchronousSteps) {
  ModelConfig c = testing::tiny_config(AttentionKind::diff_v1, true);
  c.max_seq_len = 40;
  c.vocab_size = 31;
  c.validate("lookahead test config");
  auto backend = make_cpu_backend(DType::f64);
  Model model(c, *backend, ParamSet::initialised(c, 12, DType::f64, Device::cpu));
  Script script;
  std::mt19937_64 rng(3);
  for (int i = 0; i < 8; ++i) {
    Request r;
    for (int t = 0; t < 3 + 4 * i % 23; ++t) r.prompt.push_back(3 + int(rng() % 28));
    r.max_new_tokens = 10 + 6 * (i % 4);  // some end by length, one (below) by context
    r.sampling.temperature = i % 3 == 1 ? 0.9 : 0.0;
    r.sampling.top_k = i == 4 ? 6 : 0;
    r.sampling.top_p = i == 7 ? 0.85 : 1.0;
    r.sampling.seed = 500 + std::uint64_t(i);
    r.top_logprobs = i == 2 ? 3 : 0;
    script.requests.push_back(r);
  }
  script.requests[6].max_new_tokens = 40;  // to the context's end
  script.join_call = {0, 0, 1, 3, 3, 8, 9, 15};
  EngineOptions opt;
  opt.max_batch = 8;
  opt.block_size = 4;
  opt.prefill_chunk = 6;
  opt.max_step_tokens = 16;
  opt.kv_memory_bytes = 1 << 22;
  opt.lookahead = false;
  // The reference: synchronous steps, nothing cancelled. A token of it that several sequences
  // sample mid-stream serves as EOS below.
  Engine probe(model, opt);
  const std::vector<Stream> plain = drive(probe, script);
  std::map<std::int32_t, int> seen;  // token -> sequences that sample it after their first token
  for (const Stream& s : plain) {
    if (s.tokens.size() < 3) continue;
    const std::set<std::int32_t> mid(s.tokens.begin() + 1, s.tokens.end() - 1);
    for (std::int32_t t : mid) ++seen[t];
  }
  std::int32_t eos = -1;  // of those in two sequences or more, the rarest: ends a few, not most
  for (const auto& [token, n] : seen) {
    if (n >= 2 && (eos < 0 || n < seen[eos])) eos = token;
  }
  ASSERT_GE(eos, 0);
  opt.eos_id = eos;
  Engine reference(model, opt);
  const std::vector<Stream> ref = drive(reference, script);
  int ended_by_eos = 0;
  for (const Stream& s : ref) ended_by_eos += s.finish == FinishReason::eos;
  EXPECT_GE(ended_by_eos, 2) << "EOS " << eos << " should end sequences mid-stream";

  // Look-ahead, with a roomy and with a tight pool (preemption), and with cancellations.
  const std::int64_t block = std::int64_t(c.n_layers) * 4 * (c.k_dim() + c.v_dim()) * 8;
  for (const std::int64_t pool : {std::int64_t(1) << 22, 14 * block}) {
    for (const bool cancels : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "pool " << pool << " bytes, cancels " << cancels);
      Script sc = script;
      if (cancels) sc.cancel_at_call = {{6, 1}, {12, 5}, {14, 6}};
      opt.lookahead = true;
      opt.kv_memory_bytes = pool;
      Engine ahead(model, opt);
      const std::vector<Stream> got = drive(ahead, sc);
      if (pool < (std::int64_t(1) << 22)) {
        // queued requests or a dry pool most of the time: mostly synchronous steps
        EXPECT_GT(ahead.stats().preemptions, 0);
      } else {
        EXPECT_GE(ahead.stats().lookahead_steps, 10);
      }
      for (std::size_t i = 0; i < ref.size(); ++i) {
        SCOPED_TRACE(::testing::Message() << "request " << i);
        if (got[i].finish == FinishReason::cancelled) {
          // a prefix of the reference stream
          ASSERT_LE(got[i].tokens.size(), ref[i].tokens.size());
          EXPECT_TRUE(
              std::equal(got[i].tokens.begin(), got[i].tokens.end(), ref[i].tokens.begin()));
          continue;
        }
        EXPECT_EQ(got[i].finish, ref[i].finish);
        EXPECT_EQ(got[i].tokens, ref[i].tokens);
        ASSERT_EQ(got[i].logprobs.size(), ref[i].logprobs.size());
        for (std::size_t t = 0; t < ref[i].logprobs.size(); ++t) {
          EXPECT_NEAR(got[i].logprobs[t], ref[i].logprobs[t], 1e-6);
        }
        ASSERT_EQ(got[i].top.size(), ref[i].top.size());
        for (std::size_t t = 0; t < ref[i].top.size(); ++t) {
          ASSERT_EQ(got[i].top[t].size(), ref[i].top[t].size());
          for (std::size_t k = 0; k < ref[i].top[t].size(); ++k) {
            EXPECT_EQ(got[i].top[t][k].token, ref[i].top[t][k].token);
          }
        }
      }
      if (cancels) {
        int cancelled = 0;
        for (const Stream& s : got) cancelled += s.finish == FinishReason::cancelled;
        EXPECT_GE(cancelled, 1);
      }
    }
  }
}

// Invalid logits in the middle of a decode: the token fed to the look-ahead step is -1, which
// must not stop that step (on the CPU it runs at once) before the step that sampled it names
// the problem.
TEST(EngineLookahead, InvalidLogitsMidDecodeAreReportedAsSuch) {
  ModelConfig c = testing::tiny_config(AttentionKind::diff_v1, false, RopeStyle::interleaved,
                                       /*tied=*/false);
  c.max_seq_len = 40;
  c.vocab_size = 31;
  c.validate("lookahead nan config");
  auto backend = make_cpu_backend(DType::f64);
  ParamSet params = ParamSet::initialised(c, 5, DType::f64, Device::cpu);
  Request r;
  r.prompt = {3, 4, 5};
  r.max_new_tokens = 20;
  r.stop_at_eos = false;
  EngineOptions opt;
  opt.kv_memory_bytes = 1 << 20;
  std::vector<std::int32_t> stream;
  {
    Model model(c, *backend, params);
    Engine engine(model, opt);
    engine.add(r);
    while (engine.has_work()) {
      for (const TokenEvent& e : engine.step()) stream.push_back(e.token);
    }
  }
  // The first generated token that is neither in the prompt nor generated before it, from the
  // third on: its embedding row becomes NaN, so the step that feeds it samples -1.
  std::size_t k = 2;
  auto seen_before = [&](std::size_t i) {
    return std::find(r.prompt.begin(), r.prompt.end(), stream[i]) != r.prompt.end() ||
           std::find(stream.begin(), stream.begin() + std::ptrdiff_t(i), stream[i]) !=
               stream.begin() + std::ptrdiff_t(i);
  };
  while (k + 2 < stream.size() && seen_before(k)) ++k;
  ASSERT_LT(k + 2, stream.size()) << "no fresh token to poison";
  Tensor& table = params.at("tok_embeddings.weight");
  for (std::int64_t e = 0; e < c.d_model; ++e) {
    table.data<double>()[stream[k] * c.d_model + e] = std::numeric_limits<double>::quiet_NaN();
  }
  Model model(c, *backend, params);
  Engine engine(model, opt);
  engine.add(r);
  std::size_t got = 0;
  try {
    while (engine.has_work()) got += engine.step().size();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid logits"), std::string::npos) << e.what();
  }
  EXPECT_EQ(got, k + 1) << "the tokens up to the poisoned one";
  EXPECT_GE(engine.stats().lookahead_steps, 1);
}

}  // namespace
}  // namespace difftx::engine
