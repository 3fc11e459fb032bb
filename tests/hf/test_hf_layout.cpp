// Row maps between difftx and Hugging Face attention layouts: exact permutations, export and
// import maps inverse to each other, and each difftx head reading exactly the HF heads that
// DiffLlama's eager attention pairs (q_p with k_{p/g}, q_{p+H/2} with k_{(p+H/2)/g}).
#include <gtest/gtest.h>

#include "difftx/core/error.h"
#include "difftx/hf/hf_layout.h"
#include "hf_test_util.h"

namespace difftx::hf {
namespace {
using testing::tiny_config;

TEST(HfLayout, RopeChannelOrder) {
  EXPECT_EQ(rope_channels_to_hf(8, RopeStyle::interleaved),
            (std::vector<int>{0, 2, 4, 6, 1, 3, 5, 7}));
  EXPECT_EQ(rope_channels_to_hf(8, RopeStyle::half_split),
            (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(rope_channels_to_hf(2, RopeStyle::interleaved), (std::vector<int>{0, 1}));
}

TEST(HfLayout, DiffQueryRowsMha) {
  // h = 2, d = 4, interleaved: HF q heads [Q1_0, Q1_1, Q2_0, Q2_1] = difftx components 0, 2, 1, 3.
  const ModelConfig c =
      tiny_config(AttentionKind::diff_v1, 2, 2, 4, RopeStyle::interleaved, true, false);
  const RowMap q = export_q_rows(c);
  const RowMap expected = {0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15};
  EXPECT_EQ(q, expected);
}

TEST(HfLayout, DiffKeyValueRowsGqa) {
  // h = 4, h_kv = 2, d = 2, half_split: HF k heads [K1_0, K1_1, K2_0, K2_1]; HF v heads
  // [V_0[:d], V_1[:d], V_0[d:], V_1[d:]].
  const ModelConfig c =
      tiny_config(AttentionKind::diff_v1, 4, 2, 2, RopeStyle::half_split, true, false);
  EXPECT_EQ(export_k_rows(c), (RowMap{0, 1, 4, 5, 2, 3, 6, 7}));
  EXPECT_EQ(export_v_rows(c), (RowMap{0, 1, 4, 5, 2, 3, 6, 7}));
}

struct Case {
  AttentionKind kind;
  int h, h_kv, d;
  RopeStyle rope;
};

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (RopeStyle r : {RopeStyle::interleaved, RopeStyle::half_split}) {
    for (auto [h, hk] : std::vector<std::pair<int, int>>{{4, 4}, {4, 2}, {4, 1}, {6, 3}, {6, 2}}) {
      cases.push_back({AttentionKind::diff_v1, h, hk, 4, r});
      cases.push_back({AttentionKind::softmax, h, hk, 4, r});
    }
  }
  return cases;
}

TEST(HfLayout, ExportMapsArePermutationsAndImportInvertsThem) {
  for (const Case& k : all_cases()) {
    const ModelConfig c = tiny_config(k.kind, k.h, k.h_kv, k.d, k.rope, true, false);
    const HfHeads heads = hf_heads_for(c);
    SCOPED_TRACE(fmt::format("{} h={} h_kv={} rope={}", attention_kind_name(k.kind), k.h, k.h_kv,
                             rope_style_name(k.rope)));
    const RowMap q = export_q_rows(c), kk = export_k_rows(c), v = export_v_rows(c);
    EXPECT_TRUE(is_permutation(q, c.q_dim()));
    EXPECT_TRUE(is_permutation(kk, c.k_dim()));
    EXPECT_TRUE(is_permutation(v, c.v_dim()));
    EXPECT_EQ(import_q_rows(c, heads), invert_permutation(q));
    EXPECT_EQ(import_k_rows(c, heads), invert_permutation(kk));
    EXPECT_EQ(import_v_rows(c, heads), invert_permutation(v));
    if (k.kind == AttentionKind::diff_v1) {
      const DiffKvPairing p = diffllama_kv_pairing(heads.heads, heads.kv_heads);
      EXPECT_EQ(p.groups(), c.n_kv_heads);
      EXPECT_EQ(p.group_size, c.n_rep());
    }
  }
}

// For every difftx head i of a config imported from DiffLlama (H, H_kv), the HF q/k/v heads its
// rows come from must be the ones HF's eager attention combines for pair p = i.
void check_semantics(int H, int Hk) {
  SCOPED_TRACE(fmt::format("DiffLlama H={} H_kv={}", H, Hk));
  const int d = 4, h = H / 2, g = H / Hk;
  const DiffKvPairing pairing = diffllama_kv_pairing(H, Hk);
  ModelConfig c = tiny_config(AttentionKind::diff_v1, h, pairing.groups(), d,
                              RopeStyle::interleaved, true, false);
  const HfHeads heads{true, H, Hk, d};
  const RowMap q = import_q_rows(c, heads), k = import_k_rows(c, heads),
               v = import_v_rows(c, heads);
  auto head_of = [&](std::int64_t hf_row) { return static_cast<int>(hf_row / d); };
  for (int i = 0; i < h; ++i) {
    const int j = i / c.n_rep();
    // Q1_i (component 2i) and Q2_i (2i+1): every channel from HF q heads i and i + h.
    for (int e = 0; e < d; ++e) {
      EXPECT_EQ(head_of(q[(2 * i) * d + e]), i);
      EXPECT_EQ(head_of(q[(2 * i + 1) * d + e]), i + h);
      EXPECT_EQ(head_of(k[(2 * j) * d + e]), i / g);
      EXPECT_EQ(head_of(k[(2 * j + 1) * d + e]), (i + h) / g);
      EXPECT_EQ(v[j * 2 * d + e], std::int64_t(i / g) * d + e);
      EXPECT_EQ(v[j * 2 * d + d + e], std::int64_t((i + h) / g) * d + e);
    }
  }
}

TEST(HfLayout, ImportFollowsDiffLlamaPairing) {
  check_semantics(8, 8);   // MHA
  check_semantics(8, 4);   // GQA, g = 2
  check_semantics(8, 2);   // GQA, g = 4
  check_semantics(8, 1);   // MQA: both maps share the key head
  check_semantics(12, 3);  // odd H_kv: pairs straddle key heads
  check_semantics(12, 6);
}

TEST(HfLayout, OddKvHeadsRepeatKeyHeads) {
  const DiffKvPairing mqa = diffllama_kv_pairing(8, 1);
  EXPECT_EQ(mqa.group_size, 4);
  EXPECT_EQ(mqa.first, (std::vector<int>{0}));
  EXPECT_EQ(mqa.second, (std::vector<int>{0}));
  const DiffKvPairing odd = diffllama_kv_pairing(12, 3);
  EXPECT_EQ(odd.group_size, 2);
  EXPECT_EQ(odd.first, (std::vector<int>{0, 0, 1}));
  EXPECT_EQ(odd.second, (std::vector<int>{1, 2, 2}));
  const DiffKvPairing even = diffllama_kv_pairing(8, 4);
  EXPECT_EQ(even.group_size, 2);
  EXPECT_EQ(even.first, (std::vector<int>{0, 1}));
  EXPECT_EQ(even.second, (std::vector<int>{2, 3}));
}

TEST(HfLayout, PairingRejectsImpossibleHeads) {
  testing::expect_error([] { (void)diffllama_kv_pairing(7, 7); }, {"even", "7"});
  testing::expect_error([] { (void)diffllama_kv_pairing(8, 3); }, {"divide", "3"});
}

TEST(HfLayout, V2HasNoHfHeads) {
  const ModelConfig c =
      tiny_config(AttentionKind::diff_v2, 4, 2, 4, RopeStyle::interleaved, true, false);
  testing::expect_error([&] { (void)hf_heads_for(c); }, {"DIFF V2", "no DIFF V2 class"});
  testing::expect_error([&] { (void)export_q_rows(c); }, {"DIFF V2"});
}

TEST(HfLayout, GatherRowsAndInverse) {
  Tensor t = Tensor::from_vector({3, 2}, {1, 2, 3, 4, 5, 6});
  const RowMap m = {2, 0, 1};
  Tensor g = gather_rows(t, m);
  EXPECT_EQ(g.to_float_vector(), (std::vector<float>{5, 6, 1, 2, 3, 4}));
  EXPECT_EQ(gather_rows(g, invert_permutation(m)).to_float_vector(), t.to_float_vector());
  EXPECT_EQ(gather_rows(t, RowMap{1, 1}).to_float_vector(), (std::vector<float>{3, 4, 3, 4}));
  EXPECT_FALSE(is_permutation(RowMap{0, 0, 1}, 3));
  testing::expect_error([] { (void)invert_permutation(RowMap{0, 2}); }, {"not a permutation"});
}

}  // namespace
}  // namespace difftx::hf
