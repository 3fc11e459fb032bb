// The model side of the evaluation probes on tiny models of every attention kind: the probe path
// (materialized attention) reproduces the fused path's logits and loss without quantization, in
// full forwards and in cached decoding; quantization changes the model more as bits drop; the
// observers see every layer; constrained decoding picks the label a model's weights force, and
// its summed log-probabilities equal a full forward's.
#include <gtest/gtest.h>

#include <cmath>

#include "difftx/eval/context.h"
#include "difftx/eval/icl.h"
#include "difftx/eval/needle.h"
#include "difftx/model/probe.h"
#include "eval_test_util.h"

namespace difftx::eval {
namespace {

struct Variant {
  AttentionKind kind;
  bool gqa;
};

std::string variant_name(const ::testing::TestParamInfo<Variant>& info) {
  return std::string(attention_kind_name(info.param.kind)) + (info.param.gqa ? "_gqa" : "_mha");
}

Tensor tokens(int batch, int seq, int vocab, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  Tensor t = Tensor::empty({batch, seq}, DType::i32);
  for (std::int64_t i = 0; i < t.numel(); ++i)
    t.data<std::int32_t>()[i] = int(rng() % std::uint64_t(vocab));
  return t;
}

double max_rel(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0, s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    d = std::max(d, std::abs(a[i] - b[i]));
    s = std::max(s, std::abs(b[i]));
  }
  return d / s;
}

class ProbePath : public ::testing::TestWithParam<Variant> {};

TEST_P(ProbePath, ReproducesTheFusedPathWithoutQuantization) {
  auto backend = make_cpu_backend(DType::f64);
  EvalModel m = testing::tiny_eval_model(*backend, GetParam().kind, GetParam().gqa, 3);
  ModelProbe probe(*m.model);
  const Tensor in = tokens(2, 13, m.config.vocab_size, 5);
  const auto fused = probe.forward_logits(in).to_double_vector();
  ProbeOptions none;
  const auto plain = probe.probe_logits(in, none).to_double_vector();
  EXPECT_LT(max_rel(plain, fused), 1e-12);
  // the loss, as the quant-logits task computes it
  std::vector<std::int32_t> targets(26);
  for (int i = 0; i < 26; ++i) targets[std::size_t(i)] = (i * 7) % m.config.vocab_size;
  double lf = 0, lp = 0;
  for (double x : token_nll(*backend, probe.forward_logits(in), targets)) lf += x;
  for (double x : token_nll(*backend, probe.probe_logits(in, none), targets)) lp += x;
  EXPECT_NEAR(lp, lf, 1e-10 * std::abs(lf));
  // cached decoding: prefix then two more tokens, on both paths
  KvCache c1(*m.model, 32), c2(*m.model, 32);
  std::vector<std::int32_t> prefix(in.data<std::int32_t>(), in.data<std::int32_t>() + 9);
  const auto a1 = probe.decode_last(c1, prefix).to_double_vector();
  const auto a2 = probe.probe_decode_last(c2, prefix, none).to_double_vector();
  EXPECT_LT(max_rel(a2, a1), 1e-6);  // returned in f32
  const auto b1 = probe.decode_last(c1, {4, 5}).to_double_vector();
  const auto b2 = probe.probe_decode_last(c2, {4, 5}, none).to_double_vector();
  EXPECT_LT(max_rel(b2, b1), 1e-6);
  // and the cached last row equals a full forward's
  KvCache c3(*m.model, 32);
  Tensor one = Tensor::empty({1, 11}, DType::i32);
  std::copy(prefix.begin(), prefix.end(), one.data<std::int32_t>());
  one.data<std::int32_t>()[9] = 4;
  one.data<std::int32_t>()[10] = 5;
  const auto full = probe.forward_logits(one).to_double_vector();
  const std::vector<double> last(full.end() - m.config.vocab_size, full.end());
  EXPECT_LT(max_rel(b1, last), 1e-6);
}

TEST_P(ProbePath, QuantizationMovesTheModelMoreAsBitsDrop) {
  auto backend = make_cpu_backend(DType::f32);
  EvalModel m = testing::tiny_eval_model(*backend, GetParam().kind, GetParam().gqa, 4);
  ModelProbe probe(*m.model);
  const Tensor in = tokens(1, 40, m.config.vocab_size, 6);
  ProbeOptions none;
  Tensor ref = probe.probe_logits(in, none).clone();
  double previous = 0;
  for (int bits : {12, 8, 4, 2}) {
    ProbeOptions q;
    q.quant.bits = bits;
    Tensor kl = Tensor::empty({40}, DType::f32);
    backend->kl_divergence_rows(ref, probe.probe_logits(in, q), kl);
    double mean = 0;
    for (double x : kl.to_double_vector()) mean += x / 40;
    EXPECT_GE(mean, previous * 0.5) << bits;  // coarser widths move the model (up to noise)
    if (bits <= 4) {
      EXPECT_GT(mean, 1e-6) << bits;
    }
    previous = mean;
  }
}

// Records what the observer sees.
struct Recorder : ProbeObserver {
  std::vector<int> layers, hidden_layers;
  std::vector<Shape> score_shapes;
  void on_attention(const ProbeAttention& a) override {
    layers.push_back(a.layer);
    score_shapes.push_back(a.scores->shape());
    EXPECT_EQ(a.probs->shape(), a.scores->shape());
    EXPECT_EQ(a.lambda != nullptr, a.combine == ProbeCombine::diff_v1);
    EXPECT_EQ(a.gate_logits != nullptr, a.combine == ProbeCombine::diff_v2);
  }
  void on_hidden(int layer, const Tensor& h) override { hidden_layers.push_back(layer); }
};

TEST_P(ProbePath, ObserversSeeEveryLayer) {
  auto backend = make_cpu_backend(DType::f32);
  EvalModel m = testing::tiny_eval_model(*backend, GetParam().kind, GetParam().gqa, 5);
  Recorder r;
  ProbeOptions o;
  o.observer = &r;
  ModelProbe(*m.model).probe_logits(tokens(2, 7, m.config.vocab_size, 1), o);
  EXPECT_EQ(r.layers, (std::vector<int>{0, 1}));
  EXPECT_EQ(r.hidden_layers, (std::vector<int>{0, 1}));
  EXPECT_EQ(r.score_shapes[0], (Shape{2, m.config.q_heads(), 7, 7}));
}

INSTANTIATE_TEST_SUITE_P(Kinds, ProbePath,
                         ::testing::Values(Variant{AttentionKind::diff_v1, false},
                                           Variant{AttentionKind::diff_v1, true},
                                           Variant{AttentionKind::diff_v2, false},
                                           Variant{AttentionKind::diff_v2, true},
                                           Variant{AttentionKind::softmax, false},
                                           Variant{AttentionKind::softmax, true}),
                         variant_name);

// A model whose output is token `forced` whatever the input: untied head, every block's output
// projections zero (the residual stream is the embedding), equal embeddings, and an output row
// aligned with them for the forced token only.
EvalModel forcing_model(Backend& backend, std::int32_t forced) {
  EvalModel m = testing::tiny_eval_model(backend, AttentionKind::diff_v1, false, 1);
  ModelConfig c = m.config;
  c.tied_embeddings = false;
  ParamSet p = ParamSet::initialised(c, 2, DType::f32, Device::cpu);
  for (std::size_t i = 0; i < p.size(); ++i) {
    const std::string& n = p.name(i);
    Tensor& t = p.tensor(i);
    float* x = t.data<float>();
    if (n.find("wo.weight") != std::string::npos || n.find("w_down") != std::string::npos) {
      std::fill_n(x, t.numel(), 0.f);
    } else if (n == "tok_embeddings.weight") {
      std::fill_n(x, t.numel(), 1.f);
    } else if (n == "output.weight") {
      std::fill_n(x, t.numel(), 0.f);
      std::fill_n(x + std::int64_t(forced) * c.d_model, c.d_model, 1.f);
    }
  }
  m.config = c;
  m.model = std::make_unique<Model>(c, backend, std::move(p));
  return m;
}

TEST(ConstrainedDecoding, PicksTheLabelTheWeightsForce) {
  auto backend = make_cpu_backend(DType::f32);
  const auto& tok = testing::tiny_tokenizer();
  // two labels whose continuations are single tokens of this tokenizer
  const std::vector<std::string> labels = {"cat", "dog"};
  const auto cat = tok.encode(" cat"), dog = tok.encode(" dog");
  ASSERT_EQ(cat.size(), 1u);
  ASSERT_EQ(dog.size(), 1u);
  const std::vector<std::int32_t> prompt = {data::kEosId, 7, 8, 9, 10};
  for (auto [forced, want] : {std::pair{cat[0], "cat"}, std::pair{dog[0], "dog"}}) {
    EvalModel m = forcing_model(*backend, forced);
    std::vector<double> scores;
    EXPECT_EQ(classify(m, prompt, labels, &scores), want);
    ASSERT_EQ(scores.size(), 2u);
    EXPECT_GT(std::abs(scores[0] - scores[1]), 5.0);  // not a near tie
  }
}

TEST(ConstrainedDecoding, SummedLogProbabilitiesEqualAFullForward) {
  auto backend = make_cpu_backend(DType::f64);
  EvalModel m = testing::tiny_eval_model(*backend, AttentionKind::diff_v2, true, 8);
  const std::vector<std::int32_t> prompt = {data::kEosId, 11, 12, 13, 14, 15};
  const std::vector<std::string> labels = {"a red ball", "the river", "cat"};  // multi-token labels
  std::vector<double> scores;
  classify(m, prompt, labels, &scores);
  for (std::size_t l = 0; l < labels.size(); ++l) {
    const auto cont = m.tokenizer.encode(" " + labels[l]);
    std::vector<std::int32_t> seq = prompt;
    seq.insert(seq.end(), cont.begin(), cont.end() - 1);
    Tensor in = Tensor::empty({1, std::int64_t(seq.size())}, DType::i32);
    std::copy(seq.begin(), seq.end(), in.data<std::int32_t>());
    const auto logits = m.model->logits(in).to_float_vector();  // (1, T, V)
    double want = 0;
    const std::size_t V = std::size_t(m.config.vocab_size);
    for (std::size_t i = 0; i < cont.size(); ++i) {
      const std::size_t row = prompt.size() - 1 + i;
      want += log_prob(std::span<const float>(logits.data() + row * V, V), cont[i]);
    }
    EXPECT_NEAR(scores[l], want, 1e-5) << labels[l];
  }
}

TEST(NeedleAllocation, SharesSumToOneAndFollowTheSpans) {
  auto backend = make_cpu_backend(DType::f32);
  for (auto kind : {AttentionKind::diff_v1, AttentionKind::diff_v2, AttentionKind::softmax}) {
    EvalModel m = testing::tiny_eval_model(*backend, kind, false, 9);
    const auto sentences = testing::grammar_sentences(100, 3);
    const NeedleSample s = make_needle_sample(builtin_needle_keys(), {2, 1}, 50, 200, 4, 0, 1);
    const NeedlePrompt p = build_needle_prompt(s, sentences, m.tokenizer);
    const auto shares = needle_allocation(m, p);
    double sum = 0;
    for (const char* k : {"answer", "other_needles", "noise", "sink", "query"}) {
      EXPECT_GE(shares[k].get<double>(), 0.0) << k;
      sum += shares[k].get<double>();
    }
    EXPECT_NEAR(sum, 1.0, 1e-9) << attention_kind_name(kind);
    EXPECT_GT(shares["answer"].get<double>(), 0.0);
  }
}

}  // namespace
}  // namespace difftx::eval
