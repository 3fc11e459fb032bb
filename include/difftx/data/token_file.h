// Token files of other tools as `data prepare` inputs (*.bin): llm.c's format (a header of 256
// little-endian int32: magic 20240520, version 1 for uint16 ids or 2 for uint32 ids, the token
// count; the ids from byte 1024) and nanoGPT's raw little-endian uint16 ids without a header.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace difftx::data {

inline constexpr std::int32_t kLlmcMagic = 20240520;
inline constexpr std::uint64_t kLlmcHeaderBytes = 256 * 4;

struct TokenFileInfo {
  std::string kind;  // "llm.c" or "nanoGPT (raw uint16)"
  std::uint64_t header_bytes = 0;
  std::uint32_t width = 2;  // bytes per id
  std::uint64_t tokens = 0;
};

// Recognises and checks a token file (sizes agree with the header; a raw file has an even
// size). Throws naming the file. Compressed token files are refused.
TokenFileInfo inspect_token_file(const std::filesystem::path& path);

// Reads a token file's ids front to back.
class TokenFileReader {
 public:
  explicit TokenFileReader(const std::filesystem::path& path);
  TokenFileReader(const TokenFileReader&) = delete;
  TokenFileReader& operator=(const TokenFileReader&) = delete;
  ~TokenFileReader();
  const TokenFileInfo& info() const { return info_; }
  // Skips to token `index` (< tokens).
  void seek(std::uint64_t index);
  // Reads up to `max` ids into `out`; returns how many (0 at the end).
  std::size_t read(std::int32_t* out, std::size_t max);
  std::uint64_t disk_bytes_read() const { return info_.header_bytes + next_ * info_.width; }

 private:
  std::filesystem::path path_;
  TokenFileInfo info_;
  int fd_ = -1;
  std::uint64_t next_ = 0;
};

}  // namespace difftx::data
