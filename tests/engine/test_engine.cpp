// The engine end to end on the CPU backend: greedy generations of several sequences run
// together (staggered arrivals, chunked prefill, small KV blocks) equal full recomputation
// (Model::logits on each whole prefix) for DIFF V1, V2 and softmax, MHA and GQA; preemption,
// cancellation and batch composition do not change results; log-probabilities match; bad
// requests are refused with a clear error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include "difftx/cpu/cpu_backend.h"
#include "difftx/engine/engine.h"
#include "difftx/model/model.h"
#include "model/model_test_util.h"

namespace difftx::engine {
namespace {

using testing::tiny_config;

ModelConfig config_for(AttentionKind kind, bool gqa) {
  ModelConfig c = tiny_config(kind, gqa);
  c.max_seq_len = 40;
  c.vocab_size = 31;
  c.validate("engine test config");
  return c;
}

std::vector<std::int32_t> random_prompt(int n, int vocab, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::int32_t> p;
  for (int i = 0; i < n; ++i) p.push_back(3 + int(rng() % std::uint64_t(vocab - 3)));
  return p;
}

struct Generated {
  std::vector<std::int32_t> tokens;
  std::vector<float> logprobs;
  std::vector<std::vector<TokenLogprob>> top;
  FinishReason finish = FinishReason::none;
};

// Runs the engine until idle; requests join at the steps given (continuous batching).
std::map<std::uint64_t, Generated> run(Engine& engine, const std::vector<Request>& requests,
                                       const std::vector<int>& join_step,
                                       std::vector<std::uint64_t>* ids = nullptr) {
  std::map<std::uint64_t, Generated> out;
  std::size_t next = 0;
  for (int step = 0; step < 10000; ++step) {
    while (next < requests.size() && join_step[next] <= step) {
      const std::uint64_t id = engine.add(requests[next++]);
      if (ids) ids->push_back(id);
      out[id];
    }
    if (!engine.has_work() && next == requests.size()) break;
    for (const TokenEvent& e : engine.step()) {
      Generated& g = out[e.sequence];
      EXPECT_EQ(g.finish, FinishReason::none) << "event after the end of " << e.sequence;
      if (e.token >= 0) {
        g.tokens.push_back(e.token);
        g.logprobs.push_back(e.logprob);
        g.top.push_back(e.top);
      }
      g.finish = e.finish;
    }
  }
  return out;
}

// The model's full-recomputation logits row of the prefix `tokens` (its last position).
std::vector<double> last_logits(Model& model, const std::vector<std::int32_t>& tokens) {
  Tensor in = Tensor::empty({1, std::int64_t(tokens.size())}, DType::i32);
  std::copy(tokens.begin(), tokens.end(), in.data<std::int32_t>());
  auto all = model.logits(in).to_double_vector();
  const std::size_t V = all.size() / tokens.size();
  return std::vector<double>(all.end() - std::ptrdiff_t(V), all.end());
}

double log_softmax_at(const std::vector<double>& l, int id) {
  const double m = *std::max_element(l.begin(), l.end());
  double s = 0;
  for (double x : l) s += std::exp(x - m);
  return l[static_cast<std::size_t>(id)] - m - std::log(s);
}

class EngineGreedy : public ::testing::TestWithParam<std::pair<AttentionKind, bool>> {};

TEST_P(EngineGreedy, EqualsFullRecomputation) {
  const ModelConfig c = config_for(GetParam().first, GetParam().second);
  auto backend = make_cpu_backend(DType::f64);
  Model model(c, *backend, ParamSet::initialised(c, 21, DType::f64, Device::cpu));
  EngineOptions opt;
  opt.max_batch = 4;
  opt.block_size = 4;
  opt.prefill_chunk = 5;
  opt.max_step_tokens = 12;
  opt.kv_memory_bytes = 1 << 20;
  opt.eos_id = 0;
  Engine engine(model, opt);
  std::vector<Request> requests;
  const std::vector<int> lengths = {1, 7, 13, 4, 22, 9};
  for (std::size_t i = 0; i < lengths.size(); ++i) {
    Request r;
    r.prompt = random_prompt(lengths[i], c.vocab_size, 100 + i);
    r.max_new_tokens = 6 + int(i % 3);
    r.sampling.temperature = 0;
    r.stop_at_eos = false;
    r.top_logprobs = int(i % 3);
    requests.push_back(r);
  }
  std::vector<std::uint64_t> ids;
  auto out = run(engine, requests, {0, 0, 1, 3, 3, 5}, &ids);
  ASSERT_EQ(ids.size(), requests.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "request " << i);
    const Generated& g = out[ids[i]];
    ASSERT_EQ(int(g.tokens.size()), requests[i].max_new_tokens);
    EXPECT_EQ(g.finish, FinishReason::length);
    std::vector<std::int32_t> prefix = requests[i].prompt;
    for (std::size_t t = 0; t < g.tokens.size(); ++t) {
      const std::vector<double> l = last_logits(model, prefix);
      const int want = int(std::max_element(l.begin(), l.end()) - l.begin());
      ASSERT_EQ(g.tokens[t], want) << "token " << t;
      EXPECT_NEAR(g.logprobs[t], log_softmax_at(l, want), 1e-5);
      ASSERT_EQ(int(g.top[t].size()), requests[i].top_logprobs);
      for (std::size_t k = 0; k < g.top[t].size(); ++k) {
        std::vector<int> order(l.size());
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return l[a] > l[b]; });
        EXPECT_EQ(g.top[t][k].token, order[k]);
        EXPECT_NEAR(g.top[t][k].logprob, log_softmax_at(l, order[k]), 1e-5);
      }
      prefix.push_back(g.tokens[t]);
    }
  }
  const EngineStats s = engine.stats();
  EXPECT_EQ(s.kv_blocks_used, 0);
  EXPECT_EQ(s.running + s.waiting, 0);
  EXPECT_EQ(s.prompt_tokens, 1 + 7 + 13 + 4 + 22 + 9);
}

INSTANTIATE_TEST_SUITE_P(Kinds, EngineGreedy,
                         ::testing::Values(std::make_pair(AttentionKind::diff_v1, false),
                                           std::make_pair(AttentionKind::diff_v1, true),
                                           std::make_pair(AttentionKind::diff_v2, true),
                                           std::make_pair(AttentionKind::softmax, false),
                                           std::make_pair(AttentionKind::softmax, true)),
                         [](const auto& info) {
                           return std::string(attention_kind_name(info.param.first)) +
                                  (info.param.second ? "_gqa" : "_mha");
                         });

// A pool too small for all sequences at once: preemption and recompute give the same tokens
// (greedy) and the same samples (seeded per sequence and token) as a roomy pool.
TEST(Engine, PreemptionAndBatchCompositionDoNotChangeResults) {
  const ModelConfig c = config_for(AttentionKind::diff_v1, true);
  auto backend = make_cpu_backend(DType::f64);
  Model model(c, *backend, ParamSet::initialised(c, 4, DType::f64, Device::cpu));
  std::vector<Request> requests;
  for (int i = 0; i < 5; ++i) {
    Request r;
    r.prompt = random_prompt(5 + 3 * i, c.vocab_size, 7 + i);
    r.max_new_tokens = 12;
    r.stop_at_eos = false;
    r.sampling.temperature = i % 2 ? 0.9 : 0.0;
    r.sampling.top_k = i == 3 ? 5 : 0;
    r.sampling.top_p = i == 1 ? 0.8 : 1.0;
    r.sampling.seed = 1000 + i;
    requests.push_back(r);
  }
  EngineOptions roomy;
  roomy.block_size = 4;
  roomy.kv_memory_bytes = 1 << 22;
  EngineOptions tight = roomy;
  const std::int64_t block = std::int64_t(c.n_layers) * 4 * (c.k_dim() + c.v_dim()) * 8;
  tight.kv_memory_bytes = 12 * block;  // 12 blocks of 4 tokens for 5 sequences of up to 29
  std::vector<std::uint64_t> ids_a, ids_b;
  Engine a(model, roomy);
  auto ra = run(a, requests, {0, 0, 0, 0, 0}, &ids_a);
  Engine b(model, tight);
  auto rb = run(b, requests, {0, 0, 0, 0, 0}, &ids_b);
  EXPECT_GT(b.stats().preemptions, 0);
  EXPECT_EQ(b.stats().kv_blocks_total, 12);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(ra[ids_a[i]].tokens, rb[ids_b[i]].tokens) << "request " << i;
  }
  // Alone, each request gives what it gave in the batch.
  for (std::size_t i = 0; i < requests.size(); ++i) {
    Engine solo(model, roomy);
    std::vector<std::uint64_t> id;
    auto r = run(solo, {requests[i]}, {0}, &id);
    EXPECT_EQ(r[id[0]].tokens, ra[ids_a[i]].tokens) << "request " << i;
  }
}

// A lone long prompt in small chunks: steps whose only rows are prefill chunks that sample
// nothing, then the same tokens as a single-chunk prefill.
TEST(Engine, ChunkedPrefillOfALonePromptMatchesOneChunk) {
  const ModelConfig c = config_for(AttentionKind::diff_v1, true);
  auto backend = make_cpu_backend(DType::f64);
  Model model(c, *backend, ParamSet::initialised(c, 6, DType::f64, Device::cpu));
  Request r;
  r.prompt = random_prompt(23, c.vocab_size, 5);
  r.max_new_tokens = 5;
  r.sampling.temperature = 0;
  r.stop_at_eos = false;
  EngineOptions opt;
  opt.kv_memory_bytes = 1 << 20;
  opt.block_size = 4;
  Engine whole(model, opt);
  opt.prefill_chunk = 4;
  Engine chunked(model, opt);
  std::vector<std::uint64_t> a, b;
  auto ra = run(whole, {r}, {0}, &a);
  auto rb = run(chunked, {r}, {0}, &b);
  EXPECT_EQ(ra[a[0]].tokens, rb[b[0]].tokens);
  EXPECT_EQ(chunked.stats().prompt_tokens, 23);
}

TEST(Engine, CancelEndsSequencesAndFreesTheirBlocks) {
  const ModelConfig c = config_for(AttentionKind::softmax, true);
  auto backend = make_cpu_backend(DType::f32);
  Model model(c, *backend, ParamSet::initialised(c, 2, DType::f32, Device::cpu));
  EngineOptions opt;
  opt.block_size = 4;
  opt.kv_memory_bytes = 1 << 20;
  Engine engine(model, opt);
  Request r;
  r.prompt = random_prompt(9, c.vocab_size, 1);
  r.max_new_tokens = 20;
  r.stop_at_eos = false;
  const auto running = engine.add(r);
  const auto queued = engine.add(r);
  engine.step();
  EXPECT_GT(engine.stats().kv_blocks_used, 0);
  engine.cancel(running);
  engine.cancel(queued);
  engine.cancel(987654);  // unknown: ignored
  const auto events = engine.step();
  ASSERT_EQ(events.size(), 2u);
  for (const auto& e : events) {
    EXPECT_EQ(e.finish, FinishReason::cancelled);
    EXPECT_EQ(e.token, -1);
  }
  EXPECT_FALSE(engine.has_work());
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
}

// With memory for more, the pool holds max_batch full-length sequences and the admission
// watermark: every one of max_batch longest prompts is admitted at once, none waits.
TEST(Engine, AFullBatchOfLongestPromptsIsAdmittedAtOnce) {
  ModelConfig c = config_for(AttentionKind::softmax, false);
  c.max_seq_len = 64;  // 32 blocks of 2 per sequence, 256 for 8: a watermark of 2 blocks
  auto backend = make_cpu_backend(DType::f32);
  Model model(c, *backend, ParamSet::initialised(c, 3, DType::f32, Device::cpu));
  EngineOptions opt;
  opt.block_size = 2;
  opt.max_batch = 8;
  opt.kv_memory_bytes = std::int64_t(1) << 26;  // far more than 8 full sequences
  Engine engine(model, opt);
  const int per_seq = c.max_seq_len / 2;
  for (int i = 0; i < opt.max_batch; ++i) {
    Request r;  // the longest prompt: it fills all 32 blocks of its sequence
    r.prompt = random_prompt(c.max_seq_len - 1, c.vocab_size, 50 + i);
    r.max_new_tokens = 2;
    r.stop_at_eos = false;
    engine.add(r);
  }
  int ended = 0;
  for (const TokenEvent& e : engine.step()) ended += e.finish != FinishReason::none;
  const EngineStats s = engine.stats();
  EXPECT_EQ(s.waiting, 0) << "a prompt was left waiting for the watermark";
  EXPECT_EQ(s.running + ended, opt.max_batch);
  EXPECT_GE(s.kv_blocks_total, std::int64_t(opt.max_batch) * per_seq);
  EXPECT_LE(s.kv_blocks_total, std::int64_t(opt.max_batch) * per_seq * 102 / 100 + 1);
  while (engine.has_work()) {
    for (const TokenEvent& e : engine.step()) ended += e.finish != FinishReason::none;
  }
  EXPECT_EQ(ended, opt.max_batch);
  EXPECT_EQ(engine.stats().preemptions, 0);
}

TEST(Engine, StopsAtEosAndAtTheContext) {
  const ModelConfig c = config_for(AttentionKind::diff_v1, false);
  auto backend = make_cpu_backend(DType::f64);
  Model model(c, *backend, ParamSet::initialised(c, 8, DType::f64, Device::cpu));
  Request r;
  r.prompt = random_prompt(30, c.vocab_size, 3);
  r.max_new_tokens = 100;
  r.sampling.temperature = 0;
  r.stop_at_eos = false;
  EngineOptions opt;
  opt.kv_memory_bytes = 1 << 20;
  // The greedy continuation's first token as "EOS": the sequence stops right there.
  Engine probe(model, opt);
  std::vector<std::uint64_t> id;
  auto first = run(probe, {r}, {0}, &id);
  ASSERT_EQ(first[id[0]].finish, FinishReason::context);
  ASSERT_EQ(int(first[id[0]].tokens.size()), c.max_seq_len - 30);
  opt.eos_id = first[id[0]].tokens[0];
  r.stop_at_eos = true;
  Engine engine(model, opt);
  id.clear();
  auto out = run(engine, {r}, {0}, &id);
  EXPECT_EQ(out[id[0]].finish, FinishReason::eos);
  EXPECT_EQ(out[id[0]].tokens, std::vector<std::int32_t>{opt.eos_id});
}

TEST(Engine, RefusesBadRequestsAndOptions) {
  const ModelConfig c = config_for(AttentionKind::diff_v1, false);
  auto backend = make_cpu_backend(DType::f32);
  Model model(c, *backend, ParamSet::initialised(c, 1, DType::f32, Device::cpu));
  EngineOptions opt;
  opt.kv_memory_bytes = 1 << 20;
  Engine engine(model, opt);
  auto bad = [&](auto edit) {
    Request r;
    r.prompt = {3, 4, 5};
    edit(r);
    EXPECT_THROW(engine.add(r), Error);
  };
  bad([](Request& r) { r.prompt.clear(); });
  bad([&](Request& r) { r.prompt.assign(std::size_t(c.max_seq_len), 3); });
  bad([&](Request& r) { r.prompt[1] = c.vocab_size; });
  bad([](Request& r) { r.prompt[0] = -1; });
  bad([](Request& r) { r.max_new_tokens = 0; });
  bad([](Request& r) { r.sampling.temperature = -1; });
  bad([](Request& r) { r.sampling.top_p = 0; });
  bad([](Request& r) { r.top_logprobs = kMaxTopLogprobs + 1; });
  EXPECT_FALSE(engine.has_work());
  auto bad_options = [&](auto edit) {
    EngineOptions o = opt;
    edit(o);
    EXPECT_THROW(Engine(model, o), Error);
  };
  bad_options([](EngineOptions& o) { o.max_batch = 0; });
  bad_options([](EngineOptions& o) { o.block_size = 0; });
  bad_options([](EngineOptions& o) { o.max_step_tokens = o.max_batch - 1; });
  bad_options([](EngineOptions& o) { o.kv_memory_bytes = 100; });  // less than one block
  bad_options([](EngineOptions& o) { o.kv_memory_bytes = 0, o.kv_memory_fraction = 1.5; });
  bad_options([&](EngineOptions& o) { o.eos_id = c.vocab_size; });
  // A pool too small for one request's whole length.
  EngineOptions small = opt;
  small.block_size = 4;
  small.kv_memory_bytes = 2 * std::int64_t(c.n_layers) * 4 * (c.k_dim() + c.v_dim()) * 4;
  Engine tiny(model, small);
  Request r;
  r.prompt = {3, 4, 5};
  r.max_new_tokens = 20;
  EXPECT_THROW(tiny.add(r), Error);
  r.max_new_tokens = 5;  // 8 tokens: two blocks
  EXPECT_NO_THROW(tiny.add(r));
}

}  // namespace
}  // namespace difftx::engine
