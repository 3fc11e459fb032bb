// Token shard files: a 64-byte header (magic, version, token width, counts, checksums)
// followed by little-endian token ids; written atomically, read through a memory map.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace difftx::data {

// On-disk header, all fields little-endian (see docs/data.md):
//   0  char[8]  magic "DTXTOKS1"
//   8  u32      version (1)
//   12 u32      token width in bytes (2 if vocab_size <= 65536, else 4)
//   16 u64      token count
//   24 u32      vocabulary size (every token id is below it)
//   28 u32      header size in bytes (64); the payload starts there
//   32 u64      FNV-1a-64 of the payload (token_count * width bytes)
//   40 u64      document count (EOS-terminated documents in the shard)
//   48 u64      reserved (0)
//   56 u64      FNV-1a-64 of header bytes 0..55
struct ShardHeader {
  static constexpr char kMagic[8] = {'D', 'T', 'X', 'T', 'O', 'K', 'S', '1'};
  static constexpr std::uint32_t kVersion = 1;
  static constexpr std::uint32_t kSize = 64;

  std::uint32_t version = kVersion;
  std::uint32_t token_width = 2;
  std::uint64_t token_count = 0;
  std::uint32_t vocab_size = 0;
  std::uint64_t payload_checksum = 0;
  std::uint64_t document_count = 0;

  std::uint64_t payload_bytes() const { return token_count * token_width; }
  std::uint64_t file_bytes() const { return kSize + payload_bytes(); }
};

// 2 for vocabularies up to 65536 ids, else 4.
std::uint32_t token_width_for(std::uint32_t vocab_size);

// Writes `tokens` as a shard (temp file, fsync, rename). Throws if an id is outside
// [0, vocab_size) or the file cannot be written; the target is then untouched.
void write_shard(const std::filesystem::path& path, std::span<const std::int32_t> tokens,
                 std::uint32_t vocab_size, std::uint64_t document_count);

// Parses and checks a header (magic, version, width, header checksum); `source` names the file.
ShardHeader parse_shard_header(std::span<const std::byte> bytes, const std::string& source);

// A read-only memory-mapped shard. Opening checks the header, that the file size matches the
// token count (an error names the expected and actual sizes), and (unless verify is false) the
// payload checksum and that every id is below the vocabulary size.
class ShardReader {
 public:
  explicit ShardReader(const std::filesystem::path& path, bool verify = true);
  ShardReader(ShardReader&& other) noexcept;
  ShardReader& operator=(ShardReader&& other) noexcept;
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;
  ~ShardReader();

  const std::filesystem::path& path() const { return path_; }
  const ShardHeader& header() const { return header_; }
  std::uint64_t size() const { return header_.token_count; }
  std::uint32_t vocab_size() const { return header_.vocab_size; }

  std::int32_t token(std::uint64_t i) const;
  // Copies tokens [start, start + count) into out (converted to int32).
  void copy(std::uint64_t start, std::uint64_t count, std::int32_t* out) const;
  std::vector<std::int32_t> read_all() const;

 private:
  void unmap();

  std::filesystem::path path_;
  ShardHeader header_;
  const unsigned char* map_ = nullptr;
  std::size_t map_size_ = 0;
};

}  // namespace difftx::data
