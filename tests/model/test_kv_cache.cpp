// Incremental decoding with the KV cache gives the same logits as full recomputation.
#include <gtest/gtest.h>

#include <cmath>

#include "difftx/cpu/cpu_backend.h"
#include "difftx/model/model.h"
#include "model_test_util.h"

namespace difftx::testing {
namespace {

class KvCacheTest : public ::testing::TestWithParam<std::pair<AttentionKind, bool>> {};

TEST_P(KvCacheTest, DecodeEqualsFullRecomputation) {
  ModelConfig c = tiny_config(GetParam().first, GetParam().second);
  auto backend = make_cpu_backend(DType::f64);
  Model model(c, *backend, ParamSet::initialised(c, 5, DType::f64, Device::cpu));
  Tensor tokens = random_tokens(1, 11, c.vocab_size, 9);
  Tensor full = model.logits(tokens);  // (1, 11, V)
  KvCache cache(model, c.max_seq_len);
  std::vector<std::int32_t> ids(tokens.data<std::int32_t>(), tokens.data<std::int32_t>() + 11);
  // A prompt of 4 tokens, then one token at a time.
  std::vector<Tensor> pieces;
  pieces.push_back(model.decode(cache, {ids.begin(), ids.begin() + 4}));
  for (int t = 4; t < 11; ++t) pieces.push_back(model.decode(cache, {ids[t]}));
  EXPECT_EQ(cache.length(), 11);
  int row = 0;
  for (const Tensor& piece : pieces) {
    auto got = piece.to_double_vector();
    for (std::int64_t r = 0; r < piece.dim(0); ++r, ++row) {
      for (int v = 0; v < c.vocab_size; ++v) {
        double expect = full.data<double>()[row * c.vocab_size + v];
        ASSERT_NEAR(got[r * c.vocab_size + v], expect, 1e-12)
            << "position " << row << " token " << v;
      }
    }
  }
  EXPECT_THROW(model.decode(cache, std::vector<std::int32_t>(6, 1)), Error);  // over capacity
}

INSTANTIATE_TEST_SUITE_P(Kinds, KvCacheTest,
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
}  // namespace difftx::testing
