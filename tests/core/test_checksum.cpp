// The one checksum (XXH3-64): reference values, streaming equals one-shot however the bytes are
// split, any single flipped byte changes it, text forms, and the tensor checksum built on it.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "difftx/core/checksum.h"
#include "difftx/core/tensor_checksum.h"

namespace difftx {
namespace {

TEST(CoreChecksum, ReferenceValuesOfXxh3) {
  // XXH3-64 with seed 0, from the xxHash reference implementation.
  EXPECT_EQ(checksum64(""), 0x2d06800538d394c2ULL);
  EXPECT_EQ(checksum64("a"), 0xe6c632b61e964e1fULL);
  EXPECT_EQ(hex64(0x2d06800538d394c2ULL), "2d06800538d394c2");
  EXPECT_EQ(checksum_text(0x2aULL), "xxh3-64:000000000000002a");
}

TEST(CoreChecksum, StreamingEqualsOneShotForAnySplit) {
  std::string bytes(100000, '\0');
  std::uint64_t x = 7;
  for (auto& c : bytes) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    c = static_cast<char>(x >> 56);
  }
  const std::uint64_t whole = checksum64(bytes);
  for (std::size_t piece : {1ul, 7ul, 64ul, 240ul, 4096ul, 99999ul}) {
    Checksum64 s;
    for (std::size_t i = 0; i < bytes.size(); i += piece) {
      s.update(std::string_view(bytes).substr(i, piece));
    }
    EXPECT_EQ(s.value(), whole) << "pieces of " << piece;
  }
  Checksum64 u;
  u.update_u64(0x0102030405060708ULL);
  EXPECT_EQ(u.value(), checksum64("\x08\x07\x06\x05\x04\x03\x02\x01"));
}

TEST(CoreChecksum, EverySingleFlippedByteChangesIt) {
  std::string bytes(512, 'x');
  const std::uint64_t base = checksum64(bytes);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; bit += 3) {
      std::string copy = bytes;
      copy[i] = static_cast<char>(copy[i] ^ (1 << bit));
      ASSERT_NE(checksum64(copy), base) << "byte " << i << " bit " << bit;
    }
  }
}

TEST(CoreChecksum, LegacyTextIsRecognised) {
  EXPECT_TRUE(is_legacy_checksum_text("0123456789abcdef"));
  EXPECT_FALSE(is_legacy_checksum_text("xxh3-64:0123456789abcdef"));
  EXPECT_FALSE(is_legacy_checksum_text("0123456789abcdeg"));
  EXPECT_FALSE(is_legacy_checksum_text(""));
}

TEST(CoreChecksum, TensorChecksumSeesNamesShapesDtypesAndBytes) {
  Tensor a = Tensor::zeros({2, 3}, DType::f32);
  const std::string base = tensors_checksum({{"w", a}});
  EXPECT_EQ(base.rfind("xxh3-64:", 0), 0u) << base;
  EXPECT_EQ(base.size(), 8u + 16u);
  EXPECT_EQ(tensors_checksum({{"w", a}}), base);
  EXPECT_NE(tensors_checksum({{"v", a}}), base);
  EXPECT_NE(tensors_checksum({{"w", Tensor::zeros({3, 2}, DType::f32)}}), base);
  EXPECT_NE(tensors_checksum({{"w", Tensor::zeros({2, 3}, DType::i32)}}), base);
  Tensor b = Tensor::zeros({2, 3}, DType::f32);
  b.data<float>()[5] = 1.0f;
  EXPECT_NE(tensors_checksum({{"w", b}}), base);
}

}  // namespace
}  // namespace difftx
