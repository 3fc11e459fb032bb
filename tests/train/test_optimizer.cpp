// AdamW against a step computed by hand, decay policy per tensor group, and gradient clipping.
#include <gtest/gtest.h>

#include <cmath>

#include "difftx/cpu/cpu_backend.h"
#include "difftx/train/optimizer.h"

namespace difftx::testing {
namespace {

ModelConfig micro_config() {
  ModelConfig c;
  c.vocab_size = 8;
  c.d_model = 8;
  c.n_layers = 1;
  c.attention = AttentionKind::diff_v1;
  c.n_heads = 1;
  c.n_kv_heads = 1;
  c.head_dim = 4;
  c.ffn_dim = 8;
  c.max_seq_len = 4;
  c.validate("micro");
  return c;
}

TEST(AdamW, OneStepMatchesHandComputation) {
  auto backend = make_cpu_backend(DType::f64);
  ModelConfig c = micro_config();
  Model model(c, *backend, ParamSet::initialised(c, 1, DType::f64, Device::cpu));
  OptimSettings s;
  s.beta1 = 0.9;
  s.beta2 = 0.95;
  s.eps = 1e-8;
  s.weight_decay = 0.1;
  s.grad_clip = 0;
  AdamW opt(model, s);
  Tensor& w = model.params().at("layers.0.attn.wq.weight");
  Tensor& g = model.grads().at("layers.0.attn.wq.weight");
  model.zero_grads();
  g.data<double>()[0] = 0.5;
  g.data<double>()[1] = -2.0;
  const double w0 = w.data<double>()[0], w1 = w.data<double>()[1], w2 = w.data<double>()[2];
  const double lr = 0.01;
  opt.step(lr);
  // Step 1: m = 0.1 g, v = 0.05 g^2, m_hat = g, v_hat = g^2 -> update = g / (|g| + eps).
  auto expect = [&](double p, double grad) {
    double decayed = p * (1 - lr * 0.1);
    return grad == 0 ? decayed : decayed - lr * grad / (std::abs(grad) + 1e-8);
  };
  EXPECT_NEAR(w.data<double>()[0], expect(w0, 0.5), 1e-15);
  EXPECT_NEAR(w.data<double>()[1], expect(w1, -2.0), 1e-15);
  EXPECT_NEAR(w.data<double>()[2], expect(w2, 0.0), 1e-15);
  // Step 2 with the same gradient: m = 0.19 g, v = 0.0975 g^2, bias corrections 0.19 and 0.0975.
  const double p1 = w.data<double>()[1];
  opt.step(lr);
  const double m = 0.19 * -2.0 / 0.19, v = 0.0975 * 4.0 / 0.0975;
  EXPECT_NEAR(w.data<double>()[1], p1 * (1 - lr * 0.1) - lr * m / (std::sqrt(v) + 1e-8), 1e-15);
}

TEST(AdamW, NormsGainsAndLambdasAreNotDecayed) {
  auto backend = make_cpu_backend(DType::f64);
  ModelConfig c = micro_config();
  Model model(c, *backend, ParamSet::initialised(c, 1, DType::f64, Device::cpu));
  OptimSettings s;
  s.weight_decay = 0.5;
  AdamW opt(model, s);
  model.zero_grads();
  const double lam = model.params().at("layers.0.attn.lambda_q1").data<double>()[0];
  const double gain = model.params().at("layers.0.attn.head_norm.weight").data<double>()[0];
  const double wq = model.params().at("layers.0.attn.wq.weight").data<double>()[0];
  opt.step(0.1);  // zero gradients: only decay can move a parameter
  EXPECT_EQ(model.params().at("layers.0.attn.lambda_q1").data<double>()[0], lam);
  EXPECT_EQ(model.params().at("layers.0.attn.head_norm.weight").data<double>()[0], gain);
  EXPECT_DOUBLE_EQ(model.params().at("layers.0.attn.wq.weight").data<double>()[0],
                   wq * (1 - 0.1 * 0.5));
}

TEST(AdamW, ClipsToTheGlobalNorm) {
  auto backend = make_cpu_backend(DType::f64);
  ModelConfig c = micro_config();
  Model model(c, *backend, ParamSet::initialised(c, 1, DType::f64, Device::cpu));
  OptimSettings s;
  s.grad_clip = 1.0;
  s.weight_decay = 0;
  AdamW opt(model, s);
  model.zero_grads();
  model.grads().at("norm.weight").data<double>()[0] = 3.0;
  model.grads().at("layers.0.attn.wq.weight").data<double>()[5] = 4.0;
  EXPECT_DOUBLE_EQ(opt.step(1e-3), 5.0);  // returns the norm before clipping
  EXPECT_NEAR(model.grads().at("norm.weight").data<double>()[0], 3.0 / 5.0, 1e-6);
  EXPECT_NEAR(model.grads().at("layers.0.attn.wq.weight").data<double>()[5], 4.0 / 5.0, 1e-6);
}

}  // namespace
}  // namespace difftx::testing
