// Token shards: round trip at both widths, header fields, label masks and records, and the
// errors for corruption, truncation, wrong magic, old versions, FIFOs, dangling links and
// out-of-range ids (with nothing left behind on failure).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <numeric>

#include "data_test_util.h"
#include "difftx/core/checksum.h"
#include "difftx/core/error.h"
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
    for (int i = 0; i < 4; ++i)
      v |= static_cast<std::uint32_t>(static_cast<unsigned char>(b[o + i])) << (8 * i);
    return v;
  };
  auto u64 = [&](std::size_t o) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
      v |= static_cast<std::uint64_t>(static_cast<unsigned char>(b[o + i])) << (8 * i);
    return v;
  };
  EXPECT_EQ(u32(8), 2u);     // version
  EXPECT_EQ(u32(12), 2u);    // width
  EXPECT_EQ(u64(16), 3u);    // tokens
  EXPECT_EQ(u32(24), 300u);  // vocabulary
  EXPECT_EQ(u32(28), 64u);   // header size
  EXPECT_EQ(u64(32), checksum64(b.data() + 64, 6));
  EXPECT_EQ(u64(40), 1u);  // documents
  EXPECT_EQ(u32(48), 0u);  // flags: no label mask
  EXPECT_EQ(u32(52), 0u);  // a stream, not records
  EXPECT_EQ(u64(56), checksum64(b.data(), 56));
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

TEST(DataShard, LabelMaskAndRecordsRoundTrip) {
  TempDir dir;
  const fs::path p = dir / "task.tokens";
  // 3 examples of 11 tokens (not a multiple of 8: the mask's last byte is partly used).
  std::vector<std::int32_t> ids(33);
  std::vector<std::uint8_t> labels(33);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    ids[i] = static_cast<std::int32_t>(300 + i);
    labels[i] = (i % 11 == 4 || i % 11 == 9) ? 1 : 0;
  }
  ShardLayout layout;
  layout.label_mask = true;
  layout.record_tokens = 11;
  {
    // Streamed in uneven pieces, as a generator would.
    ShardWriter w(p, 8192, layout);
    w.append(std::span(ids).subspan(0, 5), std::span(labels).subspan(0, 5));
    w.append(std::span(ids).subspan(5), std::span(labels).subspan(5));
    w.add_documents(3);
    EXPECT_FALSE(fs::exists(p)) << "the shard must appear only when finished";
    const ShardHeader h = w.finish();
    EXPECT_EQ(h.token_count, 33u);
  }
  ShardReader r(p);
  EXPECT_TRUE(r.has_label_mask());
  EXPECT_EQ(r.record_tokens(), 11u);
  EXPECT_EQ(r.header().document_count, 3u);
  EXPECT_EQ(fs::file_size(p), 64u + 33u * 2u + 5u);  // ids, then ceil(33 / 8) mask bytes
  EXPECT_EQ(r.read_all(), ids);
  std::vector<std::uint8_t> got(33);
  r.copy_labels(0, 33, got.data());
  EXPECT_EQ(got, labels);
  EXPECT_TRUE(r.label(4));
  EXPECT_FALSE(r.label(5));
  // A flipped mask bit is a checksum error like a flipped id.
  flip_byte(p, 64 + 66 + 1);
  const std::string msg = error_of([&] { ShardReader bad(p); });
  EXPECT_NE(msg.find("payload checksum"), std::string::npos) << msg;
  // A shard without a mask labels every token.
  write_shard(dir / "plain.tokens", ids, 8192, 1);
  ShardReader plain(dir / "plain.tokens");
  EXPECT_FALSE(plain.has_label_mask());
  EXPECT_TRUE(plain.label(5));
}

TEST(DataShard, WriterRefusesInconsistentLayouts) {
  TempDir dir;
  ShardLayout records;
  records.record_tokens = 4;
  const std::vector<std::int32_t> five = {5, 6, 7, 8, 9};
  EXPECT_NE(error_of([&] {
              write_shard(dir / "r.tokens", five, {}, 300, 1, records);
            }).find("not a whole number of 4-token examples"),
            std::string::npos);
  ShardLayout masked;
  masked.label_mask = true;
  EXPECT_NE(error_of([&] {
              write_shard(dir / "m.tokens", five, {}, 300, 1, masked);
            }).find("0 labels for 5 ids"),
            std::string::npos);
  const std::vector<std::uint8_t> bad_labels = {0, 1, 2, 0, 0};
  EXPECT_NE(error_of([&] {
              write_shard(dir / "m.tokens", five, bad_labels, 300, 1, masked);
            }).find("not 0 or 1"),
            std::string::npos);
  EXPECT_TRUE(fs::is_empty(dir.path())) << "a failed write must leave nothing behind";
}

TEST(DataShard, VersionOneShardsAskForARerun) {
  TempDir dir;
  const fs::path p = dir / "old.tokens";
  write_shard(p, sample_tokens(100, 4096), 4096, 1);
  // Rewrite it as version 1 did: version field 1 (its FNV-1a header checksum is not checked,
  // the version is refused first).
  std::string bytes = read_file_text(p);
  bytes[8] = 1;
  test_util::write_text(p, bytes);
  const std::string msg = error_of([&] { ShardReader r(p); });
  EXPECT_NE(msg.find("format version 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("run `difftx data prepare` again"), std::string::npos) << msg;
}

TEST(DataShard, FifoAndDanglingLinkAreRefusedByName) {
  TempDir dir;
  const fs::path fifo = dir / "pipe.tokens";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // Opening a FIFO for reading blocks until a writer appears: this must return at once.
  const std::string msg = error_of([&] { ShardReader r(fifo); });
  EXPECT_NE(msg.find("is a FIFO (named pipe), not a regular file"), std::string::npos) << msg;
  const fs::path link = dir / "link.tokens";
  fs::create_symlink(dir / "gone.tokens", link);
  const std::string dangling = error_of([&] { ShardReader r(link); });
  EXPECT_NE(dangling.find("symbolic link to"), std::string::npos) << dangling;
  EXPECT_NE(dangling.find("which does not exist"), std::string::npos) << dangling;
  // `difftx data info` on the FIFO: one error line, exit 1, no hang.
  const auto r = test_util::run_cli("data info " + fifo.string(), dir / "log.txt");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("difftx: error: token shard"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("FIFO"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace difftx::data
