// Whole-model checks of the CUDA backend against the CPU oracle: loss and every parameter
// gradient of a small model (each attention kind), and 200 training steps whose loss curve
// follows the CPU's. Skipped where no CUDA device exists.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "difftx/cpu/cpu_backend.h"
#include "difftx/cuda/backend/cuda_backend.h"
#include "difftx/model/model.h"
#include "difftx/train/optimizer.h"

namespace difftx::testing {
namespace {

#define SKIP_WITHOUT_GPU() \
  if (!cuda_device_available()) GTEST_SKIP() << "no CUDA device"

ModelConfig small_config(AttentionKind kind, bool gqa) {
  ModelConfig c;
  c.vocab_size = 512;
  c.attention = kind;
  c.n_layers = 2;
  c.head_dim = 64;  // the fused attention kernels support d = 64 and 128
  c.n_heads = kind == AttentionKind::diff_v1 ? 2 : 4;
  c.d_model = 256;
  c.n_kv_heads = gqa ? c.n_heads / 2 : c.n_heads;
  c.ffn_dim = default_ffn_dim(c.d_model);
  c.max_seq_len = 256;
  c.validate("small gpu test config");
  return c;
}

ParamSet on_device(const ParamSet& host, Device device) {
  ParamSet p;
  for (std::size_t i = 0; i < host.size(); ++i) p.add(host.name(i), host.tensor(i).to(device));
  return p;
}

// Tokens from a fixed random bigram table, so the models have something to learn.
struct BigramSource {
  std::mt19937_64 rng{17};
  std::vector<std::vector<int>> next;
  explicit BigramSource(int vocab) : next(vocab) {
    for (auto& row : next)
      for (int k = 0; k < 4; ++k) row.push_back(int(rng() % vocab));
  }
  std::pair<Tensor, Tensor> batch(int b, int t) {
    Tensor in = Tensor::empty({b, t}, DType::i32), tg = Tensor::empty({b, t}, DType::i32);
    for (int r = 0; r < b; ++r) {
      int tok = int(rng() % next.size());
      for (int s = 0; s < t; ++s) {
        in.data<std::int32_t>()[r * t + s] = tok;
        tok = next[tok][rng() % 4];
        tg.data<std::int32_t>()[r * t + s] = tok;
      }
    }
    return {in, tg};
  }
};

double relative_l2(const std::vector<double>& got, const std::vector<double>& ref) {
  double e = 0, r = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    e += (got[i] - ref[i]) * (got[i] - ref[i]);
    r += ref[i] * ref[i];
  }
  return std::sqrt(e / std::max(r, 1e-30));
}

class CudaModel : public ::testing::TestWithParam<std::pair<AttentionKind, bool>> {};

TEST_P(CudaModel, LossAndAllGradientsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  ModelConfig c = small_config(GetParam().first, GetParam().second);
  ParamSet host = ParamSet::initialised(c, 3, DType::f32, Device::cpu);
  auto cpu = make_cpu_backend(DType::f32);
  auto gpu = make_cuda_backend();
  Model mc(c, *cpu, on_device(host, Device::cpu));
  Model mg(c, *gpu, on_device(host, Device::cuda));
  BigramSource src(c.vocab_size);
  auto [in, tg] = src.batch(2, 200);
  mc.zero_grads();
  mg.zero_grads();
  const double lc = mc.forward_backward(in, tg), lg = mg.forward_backward(in, tg);
  // bf16 activations carry ~3 significant digits; the loss averages 400 tokens.
  EXPECT_NEAR(lg, lc, 5e-3 * lc);
  for (std::size_t i = 0; i < mc.grads().size(); ++i) {
    auto ref = mc.grads().tensor(i).to_double_vector();
    auto got = mg.grads().tensor(i).to_double_vector();
    for (double x : got) ASSERT_TRUE(std::isfinite(x)) << mc.grads().name(i);
    // Each gradient passes through ~10-20 bf16 roundings (2^-9 relative each) between the
    // loss and the parameter: a relative L2 error of a few 1e-2 is the expected bf16 scale.
    // The DIFF V1 lambda vectors are the exception: their gradient is dlambda times a vector,
    // and dlambda = -sum(out2 . dO) over ~1e5 terms of both signs, so the ~2% bf16 error of dO
    // is amplified by the cancellation (sum |terms| / |sum|, 10-30 here). The kernel computes
    // dlambda exactly for its inputs (test_attention_kernels: 1e-5 against -sum(out2 . dO));
    // here the lambda vectors only need the right direction and magnitude (error < 0.6).
    const bool lambda_vector = mc.grads().name(i).find("attn.lambda_") != std::string::npos;
    EXPECT_LE(relative_l2(got, ref), lambda_vector ? 0.6 : 5e-2) << mc.grads().name(i);
  }
}

TEST_P(CudaModel, TwoHundredTrainingStepsFollowTheCpuLossCurve) {
  SKIP_WITHOUT_GPU();
  ModelConfig c = small_config(GetParam().first, GetParam().second);
  ParamSet host = ParamSet::initialised(c, 4, DType::f32, Device::cpu);
  auto cpu = make_cpu_backend(DType::f32);
  auto gpu = make_cuda_backend();
  Model mc(c, *cpu, on_device(host, Device::cpu));
  Model mg(c, *gpu, on_device(host, Device::cuda));
  OptimSettings s;
  AdamW oc(mc, s), og(mg, s);
  BigramSource src(c.vocab_size);
  double first = 0, worst = 0, last_c = 0, last_g = 0;
  for (int step = 0; step < 200; ++step) {
    auto [in, tg] = src.batch(4, 128);
    mc.zero_grads();
    mg.zero_grads();
    last_c = mc.forward_backward(in, tg);
    last_g = mg.forward_backward(in, tg);
    if (step == 0) first = last_c;
    worst = std::max(worst, std::abs(last_g - last_c));
    oc.step(1e-3);
    og.step(1e-3);
  }
  RecordProperty("final_cpu_loss", std::to_string(last_c));
  RecordProperty("final_gpu_loss", std::to_string(last_g));
  RecordProperty("max_abs_gap", std::to_string(worst));
  EXPECT_LT(last_c, first - 1.0) << "the model must learn the bigram data";
  // Stated tolerance: the bf16 run stays within 0.1 nats of the fp32 run at every step and
  // ends within 2%.
  EXPECT_LT(worst, 0.1);
  EXPECT_NEAR(last_g, last_c, 0.02 * last_c);
}

INSTANTIATE_TEST_SUITE_P(Kinds, CudaModel,
                         ::testing::Values(std::make_pair(AttentionKind::diff_v1, false),
                                           std::make_pair(AttentionKind::diff_v1, true),
                                           std::make_pair(AttentionKind::diff_v2, true),
                                           std::make_pair(AttentionKind::softmax, false)),
                         [](const auto& info) {
                           return std::string(attention_kind_name(info.param.first)) +
                                  (info.param.second ? "_gqa" : "_mha");
                         });

}  // namespace
}  // namespace difftx::testing
