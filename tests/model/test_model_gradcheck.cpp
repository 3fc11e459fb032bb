// Whole-model finite-difference check in fp64: loss gradient of every parameter tensor (lambda
// vectors and norm gains included) for each attention kind, with MHA and GQA.
#include <gtest/gtest.h>

#include <cmath>

#include "difftx/cpu/cpu_backend.h"
#include "difftx/model/model.h"
#include "model_test_util.h"

namespace difftx::testing {
namespace {

struct Variant {
  AttentionKind kind;
  bool gqa;
  RopeStyle style;
  bool tied;
};

class ModelGradCheck : public ::testing::TestWithParam<Variant> {};

TEST_P(ModelGradCheck, EveryParameterGradientMatchesFiniteDifferences) {
  const Variant v = GetParam();
  ModelConfig c = tiny_config(v.kind, v.gqa, v.style, v.tied);
  auto backend = make_cpu_backend(DType::f64);
  Model model(c, *backend, ParamSet::initialised(c, 42, DType::f64, Device::cpu));
  Tensor inputs = random_tokens(2, 6, c.vocab_size, 1);
  Tensor targets = random_tokens(2, 6, c.vocab_size, 2);
  targets.data<std::int32_t>()[3] = -1;  // an ignored target
  model.zero_grads();
  model.forward_backward(inputs, targets, 1.0);

  std::mt19937_64 pick(3);
  for (std::size_t i = 0; i < model.params().size(); ++i) {
    const std::string& name = model.params().name(i);
    Tensor& p = model.params().tensor(i);
    auto analytic = model.grads().tensor(i).to_double_vector();
    const std::int64_t n = p.numel();
    for (int k = 0; k < 6; ++k) {
      const std::int64_t e = n <= 6 ? k % n : std::int64_t(pick() % std::uint64_t(n));
      double* x = p.data<double>() + e;
      const double saved = *x, h = 1e-5;
      *x = saved + h;
      const double lp = model.forward_loss(inputs, targets);
      *x = saved - h;
      const double lm = model.forward_loss(inputs, targets);
      *x = saved;
      const double fd = (lp - lm) / (2 * h);
      // fp64: truncation O(h^2) and rounding O(1e-16 / h) are both below 1e-9 here.
      EXPECT_NEAR(analytic[e], fd, 1e-8 + 1e-6 * std::abs(fd)) << name << "[" << e << "]";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, ModelGradCheck,
    ::testing::Values(Variant{AttentionKind::diff_v1, false, RopeStyle::interleaved, true},
                      Variant{AttentionKind::diff_v1, true, RopeStyle::half_split, false},
                      Variant{AttentionKind::diff_v2, false, RopeStyle::interleaved, true},
                      Variant{AttentionKind::diff_v2, true, RopeStyle::interleaved, false},
                      Variant{AttentionKind::softmax, false, RopeStyle::half_split, true},
                      Variant{AttentionKind::softmax, true, RopeStyle::interleaved, true}),
    [](const auto& info) {
      return std::string(attention_kind_name(info.param.kind)) +
             (info.param.gqa ? "_gqa" : "_mha") + "_" + rope_style_name(info.param.style) +
             (info.param.tied ? "_tied" : "_untied");
    });

}  // namespace
}  // namespace difftx::testing
