// Streaming byte sources for corpus files: plain, gzip (zlib) or zstd (libzstd), recognised by
// their first bytes, read in bounded memory whatever the file's size.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

namespace difftx::data {

enum class Compression { none, gzip, zstd };

const char* compression_name(Compression c);

// The compression of a file, from its magic bytes (gzip 1F 8B, zstd 28 B5 2F FD).
Compression detect_compression(const std::filesystem::path& path);

// The file name without a compression suffix (".gz", ".zst", ".zstd"), to find the format of
// what is inside: "a/b.jsonl.zst" -> "b.jsonl".
std::string inner_file_name(const std::filesystem::path& path);

// Reads a file's (decompressed) bytes front to back. Throws difftx::Error naming the file on a
// read error or a corrupt or truncated compressed stream.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to `size` bytes into `out`; returns how many (0 only at the end of the data).
  virtual std::size_t read(char* out, std::size_t size) = 0;
  // Compressed (on-disk) bytes consumed so far, for progress.
  virtual std::uint64_t disk_bytes_read() const = 0;
};

// Opens `path` (a regular file) with the decoder its magic bytes call for.
std::unique_ptr<ByteSource> open_byte_source(const std::filesystem::path& path);

// An estimate of the decompressed size: exact for plain files and zstd frames that record
// it, gzip's size field when plausible, else 4x the compressed size.
std::uint64_t estimate_decompressed_size(const std::filesystem::path& path);

// Line reader on a ByteSource: lines without their '\n' (a final line without one counts).
class LineReader {
 public:
  LineReader(ByteSource& source, std::string name) : source_(source), name_(std::move(name)) {}
  // Next line into `line`; false at the end. A line longer than `max_bytes` throws an Error
  // naming the file and the line.
  bool next(std::string& line, std::size_t max_bytes);
  std::uint64_t line_number() const { return line_number_; }  // 1-based, of the last line

 private:
  ByteSource& source_;
  std::string name_;
  std::string buffer_;
  std::size_t pos_ = 0;
  bool eof_ = false;
  std::uint64_t line_number_ = 0;
};

}  // namespace difftx::data
