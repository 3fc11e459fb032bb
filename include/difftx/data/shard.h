// Token shard files: a 64-byte header (magic, version, token width, counts, layout, checksums)
// followed by little-endian token ids and, for task data, a per-token label mask; written
// atomically (streamed through ShardWriter), read through a memory map.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace difftx::data {

// On-disk header, version 2, all fields little-endian (see docs/data.md):
//   0  char[8]  magic "DTXTOKS1" (the file type; the format version is the next field)
//   8  u32      version (2)
//   12 u32      token width in bytes (2 if vocab_size <= 65536, else 4)
//   16 u64      token count
//   24 u32      vocabulary size (every token id is below it)
//   28 u32      header size in bytes (64); the payload starts there
//   32 u64      XXH3-64 of the payload (the ids, then the label mask if there is one)
//   40 u64      document count (documents, or examples for record data, in the shard)
//   48 u32      flags: bit 0 = a label mask follows the ids; other bits 0
//   52 u32      record length R in tokens: 0 = one token stream; R > 0 = independent examples
//               of exactly R tokens each (the token count is a multiple of R)
//   56 u64      XXH3-64 of header bytes 0..55
// Label mask: ceil(count / 8) bytes; bit (i % 8) of byte (i / 8) is 1 when token i is a
// labelled target (the loss counts predicting token i from the tokens before it).
// Version 1 (FNV-1a checksums, no mask or records) is refused with "re-run data prepare".
struct ShardHeader {
  static constexpr char kMagic[8] = {'D', 'T', 'X', 'T', 'O', 'K', 'S', '1'};
  static constexpr std::uint32_t kVersion = 2;
  static constexpr std::uint32_t kSize = 64;
  static constexpr std::uint32_t kFlagLabelMask = 1;

  std::uint32_t version = kVersion;
  std::uint32_t token_width = 2;
  std::uint64_t token_count = 0;
  std::uint32_t vocab_size = 0;
  std::uint64_t payload_checksum = 0;
  std::uint64_t document_count = 0;
  std::uint32_t flags = 0;
  std::uint32_t record_tokens = 0;

  bool has_label_mask() const { return (flags & kFlagLabelMask) != 0; }
  std::uint64_t id_bytes() const { return token_count * token_width; }
  std::uint64_t mask_bytes() const { return has_label_mask() ? (token_count + 7) / 8 : 0; }
  std::uint64_t payload_bytes() const { return id_bytes() + mask_bytes(); }
  std::uint64_t file_bytes() const { return kSize + payload_bytes(); }
};

// 2 for vocabularies up to 65536 ids, else 4.
std::uint32_t token_width_for(std::uint32_t vocab_size);

// How a shard's tokens are organised (written into the header's flags and record length).
struct ShardLayout {
  bool label_mask = false;          // a per-token label mask is stored
  std::uint32_t record_tokens = 0;  // 0 = a stream; R = examples of R tokens
};

// Streams a shard to disk in bounded memory (ids are written as they come; the label mask,
// count / 8 bytes, is kept until finish()). The file appears under its name only when
// finish() succeeds (temporary file in the same folder, fsync, rename); a writer destroyed
// unfinished removes its temporary file. Throws on an id outside [0, vocab_size).
class ShardWriter {
 public:
  ShardWriter(const std::filesystem::path& path, std::uint32_t vocab_size, ShardLayout layout = {});
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;
  ~ShardWriter();

  // Appends ids; with a label mask, `labels` (same length, 0 or 1 each) must be given.
  void append(std::span<const std::int32_t> ids, std::span<const std::uint8_t> labels = {});
  void add_documents(std::uint64_t n) { documents_ += n; }
  std::uint64_t tokens() const { return tokens_; }
  const std::filesystem::path& path() const { return path_; }

  // Writes the mask and the header, makes the file durable and moves it into place.
  ShardHeader finish();

 private:
  void flush_buffer();

  std::filesystem::path path_, temp_;
  int fd_ = -1;
  ShardHeader header_;
  std::uint64_t tokens_ = 0, documents_ = 0;
  std::vector<unsigned char> buffer_;  // converted ids not yet written
  std::vector<unsigned char> mask_;
  struct Hash;
  std::unique_ptr<Hash> hash_;
  bool finished_ = false;
};

// Writes `tokens` as a stream shard (or with `labels` and a layout) in one call.
void write_shard(const std::filesystem::path& path, std::span<const std::int32_t> tokens,
                 std::uint32_t vocab_size, std::uint64_t document_count);
void write_shard(const std::filesystem::path& path, std::span<const std::int32_t> tokens,
                 std::span<const std::uint8_t> labels, std::uint32_t vocab_size,
                 std::uint64_t document_count, ShardLayout layout);

// Parses and checks a header (magic, version, width, layout, header checksum); `source` names
// the file.
ShardHeader parse_shard_header(std::span<const std::byte> bytes, const std::string& source);

// A read-only memory-mapped shard. Opening refuses anything but a regular file (a FIFO is
// refused without blocking), checks the header, that the file size matches the token count
// (an error names the expected and actual sizes), and (unless verify is false) the payload
// checksum and that every id is below the vocabulary size.
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
  bool has_label_mask() const { return header_.has_label_mask(); }
  std::uint32_t record_tokens() const { return header_.record_tokens; }

  std::int32_t token(std::uint64_t i) const;
  // Copies tokens [start, start + count) into out (converted to int32).
  void copy(std::uint64_t start, std::uint64_t count, std::int32_t* out) const;
  std::vector<std::int32_t> read_all() const;
  // Whether token i is a labelled target (always true without a label mask).
  bool label(std::uint64_t i) const;
  // Copies the labels of tokens [start, start + count) as 0/1 bytes.
  void copy_labels(std::uint64_t start, std::uint64_t count, std::uint8_t* out) const;
  // The largest id in the shard (0 for an empty one).
  std::uint32_t max_id() const;

 private:
  void unmap();

  std::filesystem::path path_;
  ShardHeader header_;
  const unsigned char* map_ = nullptr;
  std::size_t map_size_ = 0;
};

}  // namespace difftx::data
