// llm.c and nanoGPT token files (see token_file.h).
#include "difftx/data/token_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "difftx/core/error.h"
#include "difftx/data/file_check.h"
#include "difftx/data/input_source.h"

namespace difftx::data {
namespace fs = std::filesystem;

namespace {

std::uint32_t le32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

bool pread_all(int fd, void* out, std::size_t n, std::uint64_t offset) {
  auto* p = static_cast<char*>(out);
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, n, static_cast<off_t>(offset));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
    offset += static_cast<std::uint64_t>(r);
  }
  return true;
}

}  // namespace

TokenFileInfo inspect_token_file(const fs::path& path) {
  const std::uint64_t size =
      require_regular_file(path, "token file", "pass llm.c or nanoGPT .bin token files");
  if (detect_compression(path) != Compression::none) {
    fail("token file '{}' is compressed: decompress it first (token files are read in place)",
         path.string());
  }
  TokenFileInfo info;
  unsigned char head[12] = {};
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail("cannot open token file '{}': {}", path.string(), std::strerror(errno));
  const bool got = size >= 12 && pread_all(fd, head, sizeof head, 0);
  ::close(fd);
  if (got && static_cast<std::int32_t>(le32(head)) == kLlmcMagic) {
    const std::uint32_t version = le32(head + 4);
    if (version != 1 && version != 2) {
      fail(
          "token file '{}' has the llm.c magic but version {} (known: 1 = uint16 ids, 2 = "
          "uint32 ids)",
          path.string(), version);
    }
    info.kind = "llm.c";
    info.header_bytes = kLlmcHeaderBytes;
    info.width = version == 1 ? 2 : 4;
    info.tokens = le32(head + 8);
    const std::uint64_t expected = kLlmcHeaderBytes + info.tokens * info.width;
    if (size != expected) {
      fail(
          "llm.c token file '{}' has the wrong size: its header says {} tokens of {} bytes, so "
          "{} bytes, but it has {} bytes ({}): regenerate it",
          path.string(), info.tokens, info.width, expected, size,
          size < expected ? "truncated" : "longer than its header says");
    }
    return info;
  }
  if (size % 2 != 0) {
    fail(
        "token file '{}' is neither an llm.c file (no magic {} in its first bytes) nor raw "
        "uint16 ids (its size, {} bytes, is odd)",
        path.string(), kLlmcMagic, size);
  }
  info.kind = "nanoGPT (raw uint16)";
  info.width = 2;
  info.tokens = size / 2;
  return info;
}

TokenFileReader::TokenFileReader(const fs::path& path)
    : path_(path), info_(inspect_token_file(path)) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) fail("cannot open token file '{}': {}", path.string(), std::strerror(errno));
}

TokenFileReader::~TokenFileReader() {
  if (fd_ >= 0) ::close(fd_);
}

void TokenFileReader::seek(std::uint64_t index) {
  DIFFTX_CHECK(index <= info_.tokens, "seek to token {} past the end of '{}' ({} tokens)", index,
               path_.string(), info_.tokens);
  next_ = index;
}

std::size_t TokenFileReader::read(std::int32_t* out, std::size_t max) {
  const std::uint64_t left = info_.tokens - next_;
  const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(left, max));
  if (n == 0) return 0;
  std::vector<unsigned char> bytes(n * info_.width);
  if (!pread_all(fd_, bytes.data(), bytes.size(), info_.header_bytes + next_ * info_.width)) {
    fail("cannot read token file '{}': {}", path_.string(), std::strerror(errno));
  }
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char* p = bytes.data() + i * info_.width;
    const std::uint32_t v =
        info_.width == 2 ? static_cast<std::uint32_t>(p[0] | (p[1] << 8)) : le32(p);
    if (v > 0x7fffffffu) {
      fail("token file '{}' holds id {} at position {}, beyond any vocabulary", path_.string(), v,
           next_ + i);
    }
    out[i] = static_cast<std::int32_t>(v);
  }
  next_ += n;
  return n;
}

}  // namespace difftx::data
