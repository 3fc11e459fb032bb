// The engine on the CUDA backend (label gpu; skipped without a device): small random-weight
// models of each kind (d = 64, the kernels' size) decode several sequences together; every
// greedy token is (within bf16 tolerance) the argmax of the CUDA model's full recomputation of
// its prefix; the CUDA-graph and eager decode paths, and look-ahead and synchronous steps, give
// identical tokens and log-probabilities; preemption keeps results; the KV blocks all return.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "difftx/cuda/backend/cuda_backend.h"
#include "difftx/engine/engine.h"
#include "difftx/model/model.h"

namespace difftx::engine {
namespace {

Backend* gpu() {
  static std::unique_ptr<Backend> b = cuda_device_available() ? make_cuda_backend(0) : nullptr;
  return b.get();
}

ModelConfig small_config(AttentionKind kind, bool gqa) {
  ModelConfig c;
  c.vocab_size = 512;
  c.attention = kind;
  c.n_layers = 2;
  c.head_dim = 64;
  c.n_heads = kind == AttentionKind::diff_v1 ? 2 : 4;
  c.d_model = kind == AttentionKind::diff_v1 ? 2 * c.n_heads * c.head_dim : c.n_heads * c.head_dim;
  c.n_kv_heads = gqa ? c.n_heads / 2 : c.n_heads;
  c.ffn_dim = 512;
  c.max_seq_len = 256;
  c.init_std = 0.1;  // logits with some spread, so greedy is not a coin toss between ties
  c.validate("engine gpu test config");
  return c;
}

std::unique_ptr<Model> make_model(const ModelConfig& c, std::uint64_t seed) {
  ParamSet host = ParamSet::initialised(c, seed, DType::f32, Device::cpu);
  ParamSet params;
  for (std::size_t i = 0; i < host.size(); ++i)
    params.add(host.name(i), host.tensor(i).to(Device::cuda));
  return std::make_unique<Model>(c, *gpu(), std::move(params));
}

std::vector<Request> requests_for(const ModelConfig& c, int n, int prompt_base, int new_tokens) {
  std::mt19937_64 rng(17);
  std::vector<Request> out;
  for (int i = 0; i < n; ++i) {
    Request r;
    for (int t = 0; t < prompt_base + 13 * i; ++t)
      r.prompt.push_back(3 + int(rng() % (c.vocab_size - 3)));
    r.max_new_tokens = new_tokens;
    r.sampling.temperature = 0;
    r.stop_at_eos = false;
    out.push_back(r);
  }
  return out;
}

struct Result {
  std::vector<std::int32_t> tokens;
  std::vector<float> logprobs;
};

std::vector<Result> run_all(Engine& e, const std::vector<Request>& requests) {
  std::vector<std::uint64_t> ids;
  for (const auto& r : requests) ids.push_back(e.add(r));
  std::map<std::uint64_t, Result> by_id;
  while (e.has_work()) {
    for (const TokenEvent& ev : e.step()) {
      if (ev.token < 0) continue;
      by_id[ev.sequence].tokens.push_back(ev.token);
      by_id[ev.sequence].logprobs.push_back(ev.logprob);
    }
  }
  std::vector<Result> out;
  for (auto id : ids) out.push_back(by_id[id]);
  return out;
}

class EngineCuda : public ::testing::TestWithParam<std::pair<AttentionKind, bool>> {
 protected:
  void SetUp() override {
    if (!gpu()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_P(EngineCuda, GreedyTokensAreTheArgmaxOfFullRecomputation) {
  const ModelConfig c = small_config(GetParam().first, GetParam().second);
  auto model = make_model(c, 31);
  EngineOptions opt;
  opt.block_size = 16;
  opt.prefill_chunk = 40;  // chunked prefill of the longer prompts
  opt.kv_memory_bytes = 64 << 20;
  Engine engine(*model, opt);
  const auto requests = requests_for(c, 5, 7, 12);
  const auto results = run_all(engine, requests);
  int exact = 0, total = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    ASSERT_EQ(results[i].tokens.size(), 12u) << "request " << i;
    std::vector<std::int32_t> seq = requests[i].prompt;
    seq.insert(seq.end(), results[i].tokens.begin(), results[i].tokens.end());
    Tensor in = Tensor::empty({1, std::int64_t(seq.size()) - 1}, DType::i32);
    std::copy(seq.begin(), seq.end() - 1, in.data<std::int32_t>());
    const auto logits = model->logits(in).to_double_vector();  // teacher-forced, one pass
    const std::size_t V = std::size_t(c.vocab_size);
    for (std::size_t t = 0; t < results[i].tokens.size(); ++t) {
      const std::size_t pos = requests[i].prompt.size() - 1 + t;
      const double* row = logits.data() + pos * V;
      const double best = *std::max_element(row, row + V);
      const double chosen = row[std::size_t(results[i].tokens[t])];
      double scale = 0;
      for (std::size_t v = 0; v < V; ++v) scale = std::max(scale, std::abs(row[v]));
      // bf16 activations: the two paths may order near-ties differently
      EXPECT_GE(chosen, best - 0.02 * scale - 1e-3) << "request " << i << " token " << t;
      exact += chosen == best;
      ++total;
    }
  }
  EXPECT_GE(exact, total * 8 / 10) << "tokens that are the exact argmax";
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
}

TEST_P(EngineCuda, GraphAndEagerDecodeAgree) {
  const ModelConfig c = small_config(GetParam().first, GetParam().second);
  auto model = make_model(c, 32);
  // Four equal requests: the decode batch stays 4 (a graph bucket, no padding), so both paths
  // run the same shapes and must agree bit for bit.
  std::vector<Request> requests = requests_for(c, 4, 20, 16);
  for (auto& r : requests) r.prompt.resize(20);
  EngineOptions opt;
  opt.kv_memory_bytes = 64 << 20;
  opt.cuda_graphs = true;
  Engine with_graphs(*model, opt);
  opt.cuda_graphs = false;
  Engine eager(*model, opt);
  const auto a = run_all(with_graphs, requests), b = run_all(eager, requests);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(a[i].tokens, b[i].tokens) << "request " << i;
    EXPECT_EQ(a[i].logprobs, b[i].logprobs) << "request " << i;
  }
}

// Look-ahead (step t + 1 queued before step t's tokens reach the host, its input tokens copied
// on the device) against waiting for every step: equal requests keep the batch composition the
// same in both, so tokens and log-probabilities agree bit for bit, seeded sampling included.
TEST_P(EngineCuda, LookaheadAndSynchronousStepsAgree) {
  const ModelConfig c = small_config(GetParam().first, GetParam().second);
  auto model = make_model(c, 34);
  std::vector<Request> requests = requests_for(c, 4, 20, 24);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    requests[i].prompt.resize(20);
    if (i % 2 == 1) {
      requests[i].sampling.temperature = 0.8;
      requests[i].sampling.top_p = 0.9;
      requests[i].sampling.seed = 40 + i;
    }
  }
  EngineOptions opt;
  opt.kv_memory_bytes = 64 << 20;
  opt.block_size = 8;  // the look-ahead rows cross block boundaries
  opt.lookahead = true;
  Engine ahead(*model, opt);
  opt.lookahead = false;
  Engine waiting(*model, opt);
  const auto a = run_all(ahead, requests), b = run_all(waiting, requests);
  EXPECT_GE(ahead.stats().lookahead_steps, 20);
  EXPECT_EQ(waiting.stats().lookahead_steps, 0);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(a[i].tokens.size(), 24u) << "request " << i;
    EXPECT_EQ(a[i].tokens, b[i].tokens) << "request " << i;
    EXPECT_EQ(a[i].logprobs, b[i].logprobs) << "request " << i;
  }
  EXPECT_EQ(ahead.stats().kv_blocks_used, 0);
}

TEST_P(EngineCuda, PreemptionKeepsGreedyResults) {
  const ModelConfig c = small_config(GetParam().first, GetParam().second);
  auto model = make_model(c, 33);
  const auto requests = requests_for(c, 6, 30, 40);
  EngineOptions roomy;
  roomy.kv_memory_bytes = 64 << 20;
  roomy.cuda_graphs = false;
  EngineOptions tight = roomy;
  const std::int64_t block = std::int64_t(c.n_layers) * 16 * (c.k_dim() + c.v_dim()) * 2;
  tight.kv_memory_bytes = 20 * block;
  Engine a(*model, roomy), b(*model, tight);
  const auto ra = run_all(a, requests), rb = run_all(b, requests);
  EXPECT_GT(b.stats().preemptions, 0);
  // Recomputed prefixes go through the prefill path instead of decode: bf16 rounding differs,
  // so compare the first tokens (before any near-tie can flip) and the lengths.
  for (std::size_t i = 0; i < requests.size(); ++i) {
    ASSERT_EQ(ra[i].tokens.size(), rb[i].tokens.size());
    EXPECT_EQ(ra[i].tokens[0], rb[i].tokens[0]) << "request " << i;
  }
  EXPECT_EQ(b.stats().kv_blocks_used, 0);
}

INSTANTIATE_TEST_SUITE_P(Kinds, EngineCuda,
                         ::testing::Values(std::make_pair(AttentionKind::diff_v1, false),
                                           std::make_pair(AttentionKind::diff_v1, true),
                                           std::make_pair(AttentionKind::diff_v2, true),
                                           std::make_pair(AttentionKind::softmax, false),
                                           std::make_pair(AttentionKind::softmax, true)),
                         [](const auto& info) {
                           return std::string(attention_kind_name(info.param.first)) +
                                  (info.param.second ? "_gqa" : "_mha");
                         });

}  // namespace
}  // namespace difftx::engine
