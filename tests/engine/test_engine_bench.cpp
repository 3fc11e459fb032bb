// The engine benchmark's bookkeeping on the CPU backend: its timed decode steps run every
// sequence of the batch (none still in prefill), so the tokens generated per timed step equal
// the batch and the KV held stays near what the live tokens need, also when long prompts are
// prefilled over many steps; the table lists every row.
#include <gtest/gtest.h>

#include "difftx/cpu/cpu_backend.h"
#include "difftx/engine/bench.h"
#include "difftx/model/model.h"
#include "model/model_test_util.h"

namespace difftx::engine {
namespace {

TEST(EngineBench, TimedStepsDecodeTheWholeBatchAfterAStaggeredPrefill) {
  ModelConfig c = testing::tiny_config(AttentionKind::diff_v1, false);
  c.max_seq_len = 128;
  c.vocab_size = 31;
  c.validate("bench test config");
  auto backend = make_cpu_backend(DType::f32);
  Model model(c, *backend, ParamSet::initialised(c, 3, DType::f32, Device::cpu));
  BenchOptions o;
  o.batches = {4};
  o.contexts = {32};
  o.gen_tokens = 4;
  o.warmup_steps = 1;
  // 4 prompts of 32 tokens, 8 tokens a step: the first sequence decodes for many steps while
  // the last prompt is still being prefilled
  o.prefill_chunk = 8;
  o.max_step_tokens = 8;
  o.block_size = 4;
  o.cuda_graphs = false;
  const std::vector<BenchRow> rows = run_engine_bench(model, "tiny", o, 0.0, nullptr);
  ASSERT_EQ(rows.size(), 2u);
  const BenchRow& tg = rows[1];
  ASSERT_EQ(tg.test, "tg4") << tg.note;
  const double generated = tg.tokens_per_s * tg.ms_per_step * o.gen_tokens / 1e3;
  EXPECT_NEAR(generated, 4.0 * o.gen_tokens, 1e-6) << "tokens generated in the timed steps";
  // every sequence holds blocks of 4 for its 33 to 38 tokens: at most 3 slots unused each
  EXPECT_GE(tg.kv_ratio, 1.0);
  EXPECT_LE(tg.kv_ratio, 1.1);
  const std::string table = bench_table(rows);
  EXPECT_NE(table.find("| tg4 |"), std::string::npos) << table;
}

}  // namespace
}  // namespace difftx::engine
