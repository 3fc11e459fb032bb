// The evaluation probes on CUDA against the CPU oracle (label gpu; skipped without a device):
// the |x| histogram and threshold selection exactly (same float32 values in, same bins out), the
// probe ops at realistic sizes (head dim 64 and 128, long rows, offsets), and a whole model: the
// CUDA probe path against the CUDA fused path and against the CPU, outlier statistics and
// quantized losses of one checkpoint on both devices.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "difftx/cpu/cpu_backend.h"
#include "difftx/cuda/backend/cuda_backend.h"
#include "difftx/eval/context.h"
#include "difftx/eval/outliers.h"
#include "difftx/eval/quant.h"
#include "difftx/model/probe.h"

namespace difftx {
namespace {

Backend* gpu() {
  static Backend* b = cuda_device_available() ? make_cuda_backend(0).release() : nullptr;
  return b;
}

class CudaProbe : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!gpu()) GTEST_SKIP() << "no CUDA device";
  }
  std::mt19937_64 rng{20261130};
  // host f32 values rounded to bf16 (so both devices see identical numbers)
  Tensor random_host(Shape s, double scale, bool bf16_values) {
    Tensor t = Tensor::empty(std::move(s), DType::f32);
    std::normal_distribution<double> d(0.0, scale);
    for (std::int64_t i = 0; i < t.numel(); ++i) {
      const float x = float(d(rng));
      t.data<float>()[i] = bf16_values ? bf16_to_float(float_to_bf16(x)) : x;
    }
    return t;
  }
};

double rel_l2(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

TEST_F(CudaProbe, HistogramAndSelectionMatchTheCpuExactly) {
  auto cpu = make_cpu_backend(DType::f32);
  const AttentionGeometry g = packed_attention_geometry(2, 37, 300, 263, 6, 3, 3, 64, 64);
  for (bool as_bf16 : {false, true}) {
    for (bool scores : {false, true}) {
      SCOPED_TRACE(fmt::format("bf16 {} scores {}", as_bf16, scores));
      Tensor host = random_host({g.batch, g.q_heads, g.q_len, g.kv_len}, 30.0, as_bf16);
      Tensor dev = (as_bf16 ? host.to_dtype(DType::bf16) : host).to(Device::cuda);
      const AttentionGeometry* sg = scores ? &g : nullptr;
      Tensor cc = Tensor::empty({kAbsHistogramBins}, DType::f64);
      Tensor gc = Tensor::empty({kAbsHistogramBins}, DType::f64, Device::cuda);
      cpu->abs_histogram(host, sg, cc);
      gpu()->abs_histogram(dev, sg, gc);
      EXPECT_EQ(gc.to(Device::cpu).to_double_vector(), cc.to_double_vector());
      Tensor co = Tensor::empty({4096}, DType::f32),
             go = Tensor::empty({4096}, DType::f32, Device::cuda);
      const std::int64_t nc = cpu->abs_select_at_least(host, sg, 75.0, co);
      const std::int64_t ng = gpu()->abs_select_at_least(dev, sg, 75.0, go);
      ASSERT_EQ(ng, nc);
      ASSERT_LE(nc, 4096);
      auto a = co.rows(0, nc).to_float_vector(),
           b = go.rows(0, ng).to(Device::cpu).to_float_vector();
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      EXPECT_EQ(a, b);
    }
  }
}

TEST_F(CudaProbe, AttentionOpsMatchTheCpuAtRealisticSizes) {
  auto ref = make_cpu_backend(DType::f64);
  for (auto [combine, d, T, S, off] : {std::tuple{ProbeCombine::diff_v1, 64, 200, 200, 0},
                                       std::tuple{ProbeCombine::diff_v2, 128, 70, 333, 263},
                                       std::tuple{ProbeCombine::softmax, 64, 129, 129, 0}}) {
    SCOPED_TRACE(fmt::format("combine {} d {} T {} S {}", int(combine), d, T, S));
    const int h = 2, hkv = combine == ProbeCombine::softmax ? 1 : 2;
    AttentionGeometry g =
        combine == ProbeCombine::diff_v1
            ? packed_attention_geometry(1, T, S, off, 2 * h, 2 * hkv, hkv, d, 2 * d)
        : combine == ProbeCombine::diff_v2
            ? packed_attention_geometry(1, T, S, off, 2 * h, hkv, hkv, d, d)
            : packed_attention_geometry(1, T, S, off, h, hkv, hkv, d, d);
    Tensor q = random_host({T, g.q_heads * d}, 1.0, true),
           k = random_host({S, g.k_heads * d}, 1.0, true);
    Tensor v = random_host({S, g.v_heads * g.v_head_dim}, 1.0, true);
    const int heads = probe_out_heads(g, combine);
    Tensor gate = random_host({T, heads}, 1.0, true);
    Tensor lambda = Tensor::from_vector({1}, {0.6f});
    auto run = [&](Backend& b, bool cuda, int bits) {
      auto on = [&](const Tensor& t, DType dt) {
        Tensor x = t.to_dtype(dt);
        return cuda ? x.to(Device::cuda) : x;
      };
      const DType act = cuda ? DType::bf16 : DType::f64, stat = cuda ? DType::f32 : DType::f64;
      Tensor scores = Tensor::empty({1, g.q_heads, T, S}, stat, b.device());
      b.attention_scores(g, combine, on(q, act), on(k, act), scores);
      Tensor raw = scores.clone();
      if (bits < 16) b.attention_logits_quantize(g, bits, false, scores);
      b.attention_softmax(g, scores, scores);
      Tensor out = Tensor::empty({T, heads, g.v_head_dim}, act, b.device());
      b.attention_probs_value(g, combine, scores, on(v, act), on(lambda, stat), on(gate, act), out);
      return std::vector<std::vector<double>>{raw.to(Device::cpu).to_double_vector(),
                                              scores.to(Device::cpu).to_double_vector(),
                                              out.to(Device::cpu).to_double_vector()};
    };
    for (int bits : {16, 8}) {
      const auto want = run(*ref, false, bits), got = run(*gpu(), true, bits);
      EXPECT_LT(rel_l2(got[0], want[0]), 1e-5) << "scores";
      EXPECT_LT(rel_l2(got[1], want[1]), bits == 16 ? 1e-5 : 2e-3) << "probs, bits " << bits;
      EXPECT_LT(rel_l2(got[2], want[2]), 1e-2) << "out (bf16), bits " << bits;
    }
  }
}

ModelConfig cuda_config(AttentionKind kind) {
  ModelConfig c;
  c.vocab_size = 512;
  c.attention = kind;
  c.n_layers = 2;
  c.head_dim = 64;
  c.n_heads = kind == AttentionKind::diff_v1 ? 2 : 4;
  c.d_model = 256;
  c.n_kv_heads = kind == AttentionKind::diff_v2 ? 2 : c.n_heads;
  c.ffn_dim = 512;
  c.max_seq_len = 256;
  c.init_std = 0.05;
  c.validate("cuda probe test");
  return c;
}

TEST_F(CudaProbe, ModelProbePathAndStatisticsMatchTheCpu) {
  auto cpu = make_cpu_backend(DType::f32);
  for (auto kind : {AttentionKind::diff_v1, AttentionKind::diff_v2, AttentionKind::softmax}) {
    SCOPED_TRACE(attention_kind_name(kind));
    const ModelConfig c = cuda_config(kind);
    const ParamSet host = ParamSet::initialised(c, 3, DType::f32, Device::cpu);
    ParamSet dev;
    for (std::size_t i = 0; i < host.size(); ++i)
      dev.add(host.name(i), host.tensor(i).to(Device::cuda));
    ParamSet cpu_params;
    for (std::size_t i = 0; i < host.size(); ++i)
      cpu_params.add(host.name(i), host.tensor(i).clone());
    eval::EvalModel mg, mc;
    mg.config = mc.config = c;
    mg.label = mc.label = attention_kind_name(kind);
    mg.model = std::make_unique<Model>(c, *gpu(), std::move(dev));
    mc.model = std::make_unique<Model>(c, *cpu, std::move(cpu_params));
    std::vector<std::int32_t> stream(2 * 200 + 1);
    for (auto& t : stream) t = std::int32_t(rng() % 512);
    Tensor in = Tensor::empty({2, 200}, DType::i32);
    std::copy(stream.begin(), stream.end() - 1, in.data<std::int32_t>());
    // probe path vs fused path on the GPU, and vs the CPU
    ModelProbe pg(*mg.model), pc(*mc.model);
    const auto fused = pg.forward_logits(in).to(Device::cpu).to_double_vector();
    ProbeOptions none;
    const auto plain = pg.probe_logits(in, none).to(Device::cpu).to_double_vector();
    const auto cpu_plain = pc.probe_logits(in, none).to_double_vector();
    EXPECT_LT(rel_l2(plain, fused), 2e-2);
    EXPECT_LT(rel_l2(plain, cpu_plain), 2e-2);
    // statistics through the device-side reductions
    eval::EvalContext cg, cc;
    cg.backend = gpu();
    cc.backend = cpu.get();
    cg.progress = cc.progress = ProgressMode::quiet;
    const std::vector<std::int32_t> windows(stream.begin(), stream.end() - 1);
    const auto og = eval::outlier_statistics(mg, windows, 200, 2, cg);
    const auto oc = eval::outlier_statistics(mc, windows, 200, 2, cc);
    for (const char* kind_name : {"logits", "hidden"}) {
      EXPECT_EQ(og[kind_name]["count"], oc[kind_name]["count"]) << kind_name;
      for (const char* k : {"top1", "top10", "top100", "median"}) {
        const double a = og[kind_name][k].get<double>(), b = oc[kind_name][k].get<double>();
        EXPECT_NEAR(a, b, 0.03 * std::abs(b)) << kind_name << " " << k;  // bf16 activations
      }
    }
    const auto qg = eval::quant_statistics(mg, stream, {16, 8, 4}, false, 200, 2, cg);
    const auto qc = eval::quant_statistics(mc, stream, {16, 8, 4}, false, 200, 2, cc);
    for (int i = 0; i < 3; ++i) {
      const double a = qg["points"][i]["loss"].get<double>(),
                   b = qc["points"][i]["loss"].get<double>();
      EXPECT_NEAR(a, b, 0.01 * b) << "bits " << qg["points"][i]["bits"];
    }
    EXPECT_NEAR(qg["fused_loss"].get<double>(), qg["points"][0]["loss"].get<double>(), 5e-3);
  }
}

}  // namespace
}  // namespace difftx
