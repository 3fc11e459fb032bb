// Token shards: round trip at both widths, header fields, and the errors for corruption,
// truncation, wrong magic and out-of-range ids (with nothing left behind on failure).
#include <gtest/gtest.h>

#include <numeric>

#include "data_test_util.h"
#include "difftx/core/error.h"
#include "difftx/data/checksum.h"
#include "difftx/data/shard.h"

namespace difftx::data {
namespace {

using test_util::TempDir;

std::vector<std::int32_t> sample_tokens(std::size_t n, std::int32_t vocab) {
  std::vector<std::int32_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::int32_t>((i * 7919 + 13) % vocab);
  v[n / 2] = kEosId;
  return v;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void flip_byte(const fs::path& p, std::size_t offset) {
  std::string bytes = read_file_text(p);
  bytes[offset] = static_cast<char>(bytes[offset] ^ 0x01);
  test_util::write_text(p, bytes);
}

TEST(DataShard, ChecksumIsFnv1a64) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

TEST(DataShard, RoundTripBothWidths) {
  TempDir dir;
  for (std::uint32_t vocab : {4096u, 65536u, 100000u}) {
    const auto tokens = sample_tokens(10007, static_cast<std::int32_t>(vocab));
    const fs::path p = dir / ("s" + std::to_string(vocab) + ".tokens");
    write_shard(p, tokens, vocab, 1);
    ShardReader r(p);
    const std::uint32_t width = vocab <= 65536 ? 2 : 4;
    EXPECT_EQ(r.header().token_width, width);
    EXPECT_EQ(r.size(), tokens.size());
    EXPECT_EQ(r.vocab_size(), vocab);
    EXPECT_EQ(r.header().document_count, 1u);
    EXPECT_EQ(fs::file_size(p), 64 + tokens.size() * width);
    EXPECT_EQ(r.read_all(), tokens);
    std::vector<std::int32_t> part(5);
    r.copy(100, 5, part.data());
    EXPECT_EQ(part, std::vector<std::int32_t>(tokens.begin() + 100, tokens.begin() + 105));
    EXPECT_EQ(r.token(tokens.size() - 1), tokens.back());
  }
  // No temporary files remain after atomic writes.
  for (const auto& e : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().extension(), ".tokens") << e.path();
  }
}

TEST(DataShard, HeaderLayoutIsDocumented) {
  TempDir dir;
  const fs::path p = dir / "h.tokens";
  const std::vector<std::int32_t> tokens = {5, 6, 2};
  write_shard(p, tokens, 300, 1);
  const std::string b = read_file_text(p);
  ASSERT_EQ(b.size(), 64u + 6u);
  EXPECT_EQ(b.substr(0, 8), "DTXTOKS1");
  auto u32 = [&](std::size_t o) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(b[o + i])) << (8 * i);
    return v;
  };
  auto u64 = [&](std::size_t o) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(b[o + i])) << (8 * i);
    return v;
  };
  EXPECT_EQ(u32(8), 1u);     // version
  EXPECT_EQ(u32(12), 2u);    // width
  EXPECT_EQ(u64(16), 3u);    // tokens
  EXPECT_EQ(u32(24), 300u);  // vocabulary
  EXPECT_EQ(u32(28), 64u);   // header size
  EXPECT_EQ(u64(32), fnv1a64(b.data() + 64, 6));
  EXPECT_EQ(u64(40), 1u);  // documents
  EXPECT_EQ(u64(56), fnv1a64(b.data(), 56));
  EXPECT_EQ(static_cast<unsigned char>(b[64]), 5);  // little-endian ids
  EXPECT_EQ(static_cast<unsigned char>(b[65]), 0);
}

TEST(DataShard, OneFlippedPayloadByteIsAChecksumError) {
  TempDir dir;
  const fs::path p = dir / "c.tokens";
  write_shard(p, sample_tokens(5000, 4096), 4096, 1);
  for (std::size_t offset : {64ul, 64ul + 4999ul, 64ul + 9999ul}) {
    write_shard(p, sample_tokens(5000, 4096), 4096, 1);
    flip_byte(p, offset);
    const std::string msg = error_of([&] { ShardReader r(p); });
    EXPECT_NE(msg.find("checksum"), std::string::npos) << msg;
    EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("difftx data prepare"), std::string::npos) << msg;
    // Without verification the (corrupt) data can still be opened on purpose.
    EXPECT_NO_THROW(ShardReader(p, false));
  }
}

TEST(DataShard, OneFlippedHeaderByteIsAnError) {
  TempDir dir;
  const fs::path p = dir / "h.tokens";
  for (std::size_t offset = 0; offset < 64; offset += 3) {
    write_shard(p, sample_tokens(100, 4096), 4096, 1);
    flip_byte(p, offset);
    const std::string msg = error_of([&] { ShardReader r(p); });
    EXPECT_FALSE(msg.empty()) << "flipping header byte " << offset << " went unnoticed";
    EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
  }
}

TEST(DataShard, TruncatedFileNamesExpectedAndActualSizes) {
  TempDir dir;
  const fs::path p = dir / "t.tokens";
  write_shard(p, sample_tokens(1000, 4096), 4096, 1);
  fs::resize_file(p, 64 + 2000 - 7);
  const std::string msg = error_of([&] { ShardReader r(p); });
  EXPECT_NE(msg.find("expected 2064 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("actual 2057 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;

  fs::resize_file(p, 10);
  const std::string short_msg = error_of([&] { ShardReader r(p); });
  EXPECT_NE(short_msg.find("expected at least 64 bytes"), std::string::npos) << short_msg;
  EXPECT_NE(short_msg.find("actual 10 bytes"), std::string::npos) << short_msg;
}

TEST(DataShard, OtherBadFiles) {
  TempDir dir;
  const fs::path text = dir / "text.tokens";
  test_util::write_text(text, std::string(200, 'x'));
  EXPECT_NE(error_of([&] { ShardReader r(text); }).find("not a difftx token shard"),
            std::string::npos);
  const std::string missing = error_of([&] { ShardReader r(dir / "missing.tokens"); });
  EXPECT_NE(missing.find("missing.tokens"), std::string::npos) << missing;
  EXPECT_NE(missing.find("difftx data prepare"), std::string::npos) << missing;
}

TEST(DataShard, OutOfRangeIdIsRefusedAndNothingIsWritten) {
  TempDir dir;
  const fs::path p = dir / "bad.tokens";
  const std::vector<std::int32_t> tokens = {1, 2, 4096};
  const std::string msg = error_of([&] { write_shard(p, tokens, 4096, 0); });
  EXPECT_NE(msg.find("4096"), std::string::npos) << msg;
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(DataShard, UnwritableTargetLeavesOldFileIntact) {
  TempDir dir;
  const fs::path p = dir / "keep.tokens";
  write_shard(p, sample_tokens(10, 4096), 4096, 1);
  const std::string before = read_file_text(p);
  EXPECT_THROW(write_shard(p, std::vector<std::int32_t>{1, 99999}, 4096, 0), Error);
  EXPECT_EQ(read_file_text(p), before);
  EXPECT_THROW(write_shard(dir / "no" / "such" / "dir.tokens", sample_tokens(10, 4096), 4096, 1),
               Error);
}

}  // namespace
}  // namespace difftx::data
