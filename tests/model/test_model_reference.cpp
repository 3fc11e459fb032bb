// The C++ model against the independent PyTorch reference (tests/reference/diff_reference.py,
// run with Debian's /usr/bin/python3): logits, loss and every parameter gradient of the fp32
// CPU model within 1e-4 relative error of the reference (computed in fp64), for DIFF V1, V2 and
// the softmax baseline, each with MHA and GQA.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "difftx/core/atomic_file.h"
#include "difftx/core/safetensors.h"
#include "difftx/cpu/cpu_backend.h"
#include "difftx/model/model.h"
#include "model_test_util.h"

namespace difftx::testing {
namespace {
namespace fs = std::filesystem;

struct Variant {
  AttentionKind kind;
  bool gqa;
  RopeStyle style;
  bool tied;
};

// max |a - b| / max |b|: the error relative to the tensor's scale.
double max_relative_error(const Tensor& got, const Tensor& ref) {
  auto a = got.to_double_vector(), b = ref.to_double_vector();
  EXPECT_EQ(a.size(), b.size());
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

class ModelVsReference : public ::testing::TestWithParam<Variant> {};

TEST_P(ModelVsReference, LogitsLossAndGradientsMatchPyTorch) {
  const Variant v = GetParam();
  ModelConfig c = tiny_config(v.kind, v.gqa, v.style, v.tied);
  c.n_layers = 3;  // layers 0..2 exercise lambda_init's 0-based index
  auto backend = make_cpu_backend(DType::f32);
  Model model(c, *backend, ParamSet::initialised(c, 11, DType::f32, Device::cpu));
  Tensor inputs = random_tokens(2, 9, c.vocab_size, 21);
  Tensor targets = random_tokens(2, 9, c.vocab_size, 22);

  const std::string tag = std::string(attention_kind_name(v.kind)) + (v.gqa ? "_gqa" : "_mha") +
                          rope_style_name(v.style) + (v.tied ? "_tied" : "_untied");
  fs::path dir = fs::temp_directory_path() / ("difftx_ref_" + tag);
  fs::create_directories(dir);
  write_file_atomic(dir / "config.json", c.to_json().dump(2));
  std::vector<std::pair<std::string, Tensor>> weights;
  for (std::size_t i = 0; i < model.params().size(); ++i)
    weights.emplace_back(model.params().name(i), model.params().tensor(i));
  save_safetensors(dir / "weights.safetensors", weights);
  save_safetensors(dir / "tokens.safetensors", {{"inputs", inputs}, {"targets", targets}});
  std::string cmd = "/usr/bin/python3 " + std::string(DIFFTX_SOURCE_DIR) +
                    "/tests/reference/diff_reference.py --config " +
                    (dir / "config.json").string() + " --weights " +
                    (dir / "weights.safetensors").string() + " --tokens " +
                    (dir / "tokens.safetensors").string() + " --out " +
                    (dir / "ref.safetensors").string() + " --dtype float64";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  SafetensorsFile ref = load_safetensors(dir / "ref.safetensors");

  Tensor logits = model.logits(inputs);
  EXPECT_LE(max_relative_error(logits, ref.at("logits")), 1e-4) << "logits";
  model.zero_grads();
  const double loss = model.forward_backward(inputs, targets, 1.0);
  const double ref_loss = ref.at("loss").to_double_vector()[0];
  EXPECT_LE(std::abs(loss - ref_loss) / std::abs(ref_loss), 1e-4) << loss << " vs " << ref_loss;
  for (std::size_t i = 0; i < model.grads().size(); ++i) {
    const std::string& name = model.grads().name(i);
    ASSERT_TRUE(ref.contains("grad." + name)) << name;
    EXPECT_LE(max_relative_error(model.grads().tensor(i), ref.at("grad." + name)), 1e-4) << name;
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, ModelVsReference,
    ::testing::Values(Variant{AttentionKind::diff_v1, false, RopeStyle::interleaved, true},
                      Variant{AttentionKind::diff_v1, true, RopeStyle::interleaved, true},
                      Variant{AttentionKind::diff_v1, true, RopeStyle::half_split, false},
                      Variant{AttentionKind::diff_v2, false, RopeStyle::interleaved, true},
                      Variant{AttentionKind::diff_v2, true, RopeStyle::interleaved, false},
                      Variant{AttentionKind::softmax, false, RopeStyle::interleaved, true},
                      Variant{AttentionKind::softmax, true, RopeStyle::half_split, true}),
    [](const auto& info) {
      return std::string(attention_kind_name(info.param.kind)) +
             (info.param.gqa ? "_gqa" : "_mha") + "_" + rope_style_name(info.param.style) +
             (info.param.tied ? "_tied" : "_untied");
    });

// The head pairing under GQA is the spec's (head i uses key components 2j, 2j+1 with
// j = i / n_rep), not the naive file's repeat-then-pair: changing key component 3 (K2 of
// group 1) must leave heads 0 and 1 (group 0) untouched.
TEST(GqaPairing, KeyComponentOfGroupOneOnlyAffectsItsHeads) {
  auto backend = make_cpu_backend(DType::f64);
  AttentionGeometry g;
  g.batch = 1;
  g.q_len = 4;
  g.kv_len = 4;
  g.q_heads = 8;
  g.k_heads = 4;
  g.v_heads = 2;
  g.head_dim = 2;
  g.v_head_dim = 4;
  g.scale = 0.7;
  g.q_row_stride = 16;
  g.kv_row_stride_k = 8;
  g.kv_row_stride_v = 8;
  std::mt19937_64 rng(1);
  std::normal_distribution<double> n01;
  auto rnd = [&](Shape s) {
    Tensor t = Tensor::empty(s, DType::f64);
    for (std::int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = n01(rng);
    return t;
  };
  Tensor q = rnd({4, 16}), k = rnd({4, 8}), v = rnd({4, 8});
  Tensor lambda = Tensor::from_vector({1}, {0.6f}, DType::f64);
  auto run = [&](const Tensor& kk) {
    Tensor out = Tensor::empty({4, 4, 4}, DType::f64), out2 = out.clone(),
           lse = Tensor::empty({1, 8, 4}, DType::f64);
    backend->diff_attention_forward(g, q, kk, v, lambda, out, out2, lse);
    return out.to_double_vector();
  };
  auto base = run(k);
  Tensor k2 = k.clone();
  // component 3 = K2 of group 1; a different shift per key (a common shift cancels in softmax)
  for (int t = 0; t < 4; ++t) k2.data<double>()[t * 8 + 3 * 2] += 0.9 * (t + 1);
  auto changed = run(k2);
  for (int t = 0; t < 4; ++t) {
    for (int head = 0; head < 4; ++head) {
      double delta = 0;
      for (int c = 0; c < 4; ++c)
        delta += std::abs(changed[(t * 4 + head) * 4 + c] - base[(t * 4 + head) * 4 + c]);
      if (head < 2) {
        EXPECT_EQ(delta, 0.0) << "head " << head << " token " << t;
      } else if (t > 0) {  // with one visible key the softmax is 1 whatever the key
        EXPECT_GT(delta, 1e-6) << "head " << head << " token " << t;
      }
    }
  }
}

}  // namespace
}  // namespace difftx::testing
