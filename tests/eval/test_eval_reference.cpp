// The evaluation metrics against an independent PyTorch computation (tests/eval/eval_reference.py,
// Debian's /usr/bin/python3, float64) on the same tiny checkpoints: outlier statistics (top-k,
// median, counts; overall and per layer), the loss and KL of the model with quantized attention
// logits (per tensor and per head), and the attention allocation of a needle prompt, for DIFF V1,
// DIFF V2 and the softmax baseline.
#include <gtest/gtest.h>

#include <cstdlib>

#include "difftx/core/atomic_file.h"
#include "difftx/core/safetensors.h"
#include "difftx/eval/needle.h"
#include "difftx/eval/outliers.h"
#include "difftx/eval/quant.h"
#include "eval_test_util.h"

namespace difftx::eval {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

struct Case {
  AttentionKind kind;
  bool gqa;
  bool per_head;
};

std::string tag(const Case& c) {
  return std::string(attention_kind_name(c.kind)) + (c.gqa ? "_gqa" : "_mha") +
         (c.per_head ? "_per_head" : "_per_tensor");
}
std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return tag(info.param);
}

// Writes the model and tokens, runs the reference, returns its JSON.
json run_reference(const EvalModel& m, const fs::path& dir, const Tensor& inputs,
                   const Tensor* targets, const std::string& extra) {
  fs::create_directories(dir);
  write_file_atomic(dir / "config.json", m.config.to_json().dump());
  std::vector<std::pair<std::string, Tensor>> weights;
  for (std::size_t i = 0; i < m.model->params().size(); ++i) {
    weights.emplace_back(m.model->params().name(i), m.model->params().tensor(i));
  }
  save_safetensors(dir / "weights.safetensors", weights);
  std::vector<std::pair<std::string, Tensor>> toks = {{"inputs", inputs}};
  if (targets) toks.emplace_back("targets", *targets);
  save_safetensors(dir / "tokens.safetensors", toks);
  const std::string cmd =
      "/usr/bin/python3 " + std::string(DIFFTX_SOURCE_DIR) + "/tests/eval/eval_reference.py" +
      " --config " + (dir / "config.json").string() + " --weights " +
      (dir / "weights.safetensors").string() + " --tokens " +
      (dir / "tokens.safetensors").string() + " --out " + (dir / "out.json").string() + " " + extra;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return json::parse(read_file_text(dir / "out.json"));
}

void expect_summary(const json& got, const json& want, const std::string& what) {
  EXPECT_EQ(got["count"].get<std::uint64_t>(), want["count"].get<std::uint64_t>()) << what;
  for (const char* k : {"top1", "top2", "top3", "top10", "top100"}) {
    if (want[k].is_null()) {
      EXPECT_TRUE(got[k].is_null()) << what << " " << k;
      continue;
    }
    const double w = want[k].get<double>();
    EXPECT_NEAR(got[k].get<double>(), w, 1e-6 * w) << what << " " << k;  // values kept as f32
  }
  const double med = want["median"].get<double>();
  EXPECT_LE(std::abs(got["median"].get<double>() - med), (1.0 / 256 + 1e-6) * med)
      << what << " median";
}

class AgainstPyTorch : public ::testing::TestWithParam<Case> {};

TEST_P(AgainstPyTorch, OutliersQuantizedLossAndAllocation) {
  const Case c = GetParam();
  auto backend = make_cpu_backend(DType::f64);
  EvalModel m = testing::tiny_eval_model(*backend, c.kind, c.gqa, 21);
  EvalContext ctx;
  ctx.backend = backend.get();
  ctx.progress = ProgressMode::quiet;
  const fs::path dir = fs::temp_directory_path() / ("difftx_eval_ref_" + tag(c));
  // a stream of 2T + 1 tokens: two windows of T inputs, each with its next-token targets
  const int T = 48;
  std::mt19937_64 rng(4);
  std::vector<std::int32_t> stream(2 * T + 1);
  for (auto& t : stream) t = std::int32_t(rng() % std::uint64_t(m.config.vocab_size));
  Tensor inputs = Tensor::empty({2, T}, DType::i32), targets = Tensor::empty({2, T}, DType::i32);
  for (int r = 0; r < 2; ++r) {
    for (int t = 0; t < T; ++t) {
      inputs.data<std::int32_t>()[r * T + t] = stream[std::size_t(r * T + t)];
      targets.data<std::int32_t>()[r * T + t] = stream[std::size_t(r * T + t + 1)];
    }
  }
  const json want = run_reference(m, dir / "lm", inputs, &targets,
                                  std::string("--bits 8 6 4") + (c.per_head ? " --per-head" : ""));
  // outliers over the same two windows
  const std::vector<std::int32_t> windows(stream.begin(), stream.end() - 1);
  const json out = outlier_statistics(m, windows, T, 2, ctx);
  expect_summary(out["logits"], want["outliers"]["logits"], "logits");
  expect_summary(out["hidden"], want["outliers"]["hidden"], "hidden");
  for (int l = 0; l < m.config.n_layers; ++l) {
    expect_summary(out["per_layer"][l]["logits"], want["outliers"]["per_layer"][l]["logits"],
                   fmt::format("layer {} logits", l));
    expect_summary(out["per_layer"][l]["hidden"], want["outliers"]["per_layer"][l]["hidden"],
                   fmt::format("layer {} hidden", l));
  }
  // quantized loss and KL
  const json q = quant_statistics(m, stream, {16, 8, 6, 4}, c.per_head, T, 2, ctx);
  const double ref_loss = want["loss"].get<double>();
  EXPECT_NEAR(q["fused_loss"].get<double>(), ref_loss, 1e-10 * ref_loss);
  EXPECT_NEAR(q["points"][0]["loss"].get<double>(), ref_loss, 1e-10 * ref_loss);
  for (int i = 0; i < 3; ++i) {
    const json& w = want["quant"][i];
    const json& g = q["points"][i + 1];
    ASSERT_EQ(g["bits"], w["bits"]);
    EXPECT_NEAR(g["loss"].get<double>(), w["loss"].get<double>(), 1e-9 * ref_loss)
        << "bits " << w["bits"];
    EXPECT_NEAR(g["kl"].get<double>(), w["kl"].get<double>(), 1e-9 + 1e-7 * w["kl"].get<double>())
        << "bits " << w["bits"];
  }
  EXPECT_GT(q["points"][3]["kl"].get<double>(), q["points"][1]["kl"].get<double>());  // 4 bits vs 8
  // attention allocation of one needle prompt
  const auto sentences = testing::grammar_sentences(200, 5);
  const NeedleSample s = make_needle_sample(builtin_needle_keys(), {2, 1}, 25, 200, 4, 1, 3);
  const NeedlePrompt p = build_needle_prompt(s, sentences, m.tokenizer);
  std::vector<std::int32_t> seq = p.context;
  seq.insert(seq.end(), p.queries[0].begin(), p.queries[0].end());
  const int first = int(seq.size()) - 1, rows = int(p.answers[0].size());
  seq.insert(seq.end(), p.answers[0].begin(), p.answers[0].end() - 1);
  // key groups, spelled out from the definition in needle.h
  std::vector<std::string> groups(seq.size(), "query");
  for (std::size_t t = 0; t < p.context.size(); ++t) groups[t] = "noise";
  for (std::size_t k = 0; k < p.spans.size(); ++k) {
    for (int t = p.spans[k].first; t < p.spans[k].second; ++t)
      groups[std::size_t(t)] = k == 0 ? "answer" : "other_needles";
  }
  groups[0] = "sink";
  write_file_atomic(dir / "groups.json", json(groups).dump());
  Tensor one = Tensor::empty({1, std::int64_t(seq.size())}, DType::i32);
  std::copy(seq.begin(), seq.end(), one.data<std::int32_t>());
  const json wa = run_reference(m, dir / "alloc", one, nullptr,
                                fmt::format("--alloc-first {} --alloc-rows {} --groups {}", first,
                                            rows, (dir / "groups.json").string()))["allocation"];
  const json ga = needle_allocation(m, p);
  for (const char* k : {"answer", "other_needles", "noise", "sink", "query"}) {
    EXPECT_NEAR(ga[k].get<double>(), wa[k].get<double>(), 1e-9) << k;
  }
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Kinds, AgainstPyTorch,
                         ::testing::Values(Case{AttentionKind::diff_v1, true, false},
                                           Case{AttentionKind::diff_v1, false, true},
                                           Case{AttentionKind::diff_v2, true, false},
                                           Case{AttentionKind::softmax, true, false},
                                           Case{AttentionKind::softmax, false, true}),
                         case_name);

}  // namespace
}  // namespace difftx::eval
