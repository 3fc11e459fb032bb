// Token shard writing (atomic) and memory-mapped reading with size and checksum checks.
#include "difftx/data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/data/checksum.h"

namespace difftx::data {
namespace fs = std::filesystem;

namespace {

void put_u32(unsigned char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
void put_u64(unsigned char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
std::uint32_t get_u32(const unsigned char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(p[i]) << (8 * i);
  return v;
}
std::uint64_t get_u64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return v;
}

void encode_header(const ShardHeader& h, unsigned char* out) {
  std::memset(out, 0, ShardHeader::kSize);
  std::memcpy(out, ShardHeader::kMagic, 8);
  put_u32(out + 8, h.version);
  put_u32(out + 12, h.token_width);
  put_u64(out + 16, h.token_count);
  put_u32(out + 24, h.vocab_size);
  put_u32(out + 28, ShardHeader::kSize);
  put_u64(out + 32, h.payload_checksum);
  put_u64(out + 40, h.document_count);
  put_u64(out + 56, fnv1a64(out, 56));
}

const char* kRemake = "run `difftx data prepare` again to rebuild the shards";

}  // namespace

std::uint32_t token_width_for(std::uint32_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

void write_shard(const fs::path& path, std::span<const std::int32_t> tokens,
                 std::uint32_t vocab_size, std::uint64_t document_count) {
  ShardHeader h;
  h.token_width = token_width_for(vocab_size);
  h.token_count = tokens.size();
  h.vocab_size = vocab_size;
  h.document_count = document_count;
  // Convert to little-endian bytes of the chosen width, checking ranges, and checksum them.
  std::vector<unsigned char> payload(tokens.size() * h.token_width);
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const std::int32_t t = tokens[i];
    if (t < 0 || static_cast<std::uint32_t>(t) >= vocab_size) {
      fail("cannot write shard '{}': token {} at position {} is outside [0, {})", path.string(),
           t, i, vocab_size);
    }
    const auto u = static_cast<std::uint32_t>(t);
    unsigned char* p = payload.data() + i * h.token_width;
    p[0] = static_cast<unsigned char>(u);
    p[1] = static_cast<unsigned char>(u >> 8);
    if (h.token_width == 4) {
      p[2] = static_cast<unsigned char>(u >> 16);
      p[3] = static_cast<unsigned char>(u >> 24);
    }
  }
  h.payload_checksum = fnv1a64(payload.data(), payload.size());
  unsigned char header[ShardHeader::kSize];
  encode_header(h, header);
  write_file_atomic_streamed(path, [&](const ByteSink& sink) {
    sink(header, sizeof header);
    sink(payload.data(), payload.size());
  });
}

ShardHeader parse_shard_header(std::span<const std::byte> bytes, const std::string& source) {
  if (bytes.size() < ShardHeader::kSize) {
    fail("'{}' is too short to be a token shard: expected at least {} bytes (the header), "
         "actual {} bytes; {}",
         source, ShardHeader::kSize, bytes.size(), kRemake);
  }
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (std::memcmp(p, ShardHeader::kMagic, 8) != 0) {
    fail("'{}' is not a difftx token shard (its first 8 bytes are not \"DTXTOKS1\")", source);
  }
  ShardHeader h;
  h.version = get_u32(p + 8);
  if (h.version != ShardHeader::kVersion) {
    fail("'{}' is a token shard of version {}, this difftx reads version {}; {}", source,
         h.version, ShardHeader::kVersion, kRemake);
  }
  const std::uint64_t stored = get_u64(p + 56);
  const std::uint64_t actual = fnv1a64(p, 56);
  if (stored != actual) {
    fail("'{}' has a corrupt header: header checksum expected {}, actual {}; {}", source,
         hex64(stored), hex64(actual), kRemake);
  }
  h.token_width = get_u32(p + 12);
  h.token_count = get_u64(p + 16);
  h.vocab_size = get_u32(p + 24);
  const std::uint32_t header_size = get_u32(p + 28);
  h.payload_checksum = get_u64(p + 32);
  h.document_count = get_u64(p + 40);
  if ((h.token_width != 2 && h.token_width != 4) || header_size != ShardHeader::kSize ||
      h.vocab_size == 0 || h.token_width != token_width_for(h.vocab_size) ||
      h.token_count > std::numeric_limits<std::uint64_t>::max() / 8) {
    fail("'{}' has an inconsistent header (token width {}, header size {}, vocabulary {}); {}",
         source, h.token_width, header_size, h.vocab_size, kRemake);
  }
  return h;
}

ShardReader::ShardReader(const fs::path& path, bool verify) : path_(path) {
  const std::string source = path.string();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fail("cannot open token shard '{}': {}{}", source, std::strerror(errno),
         errno == ENOENT ? " (run `difftx data prepare` to make shards)" : "");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("'{}' is not a regular file", source);
  }
  map_size_ = static_cast<std::size_t>(st.st_size);
  if (map_size_ > 0) {
    void* m = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail("cannot memory-map token shard '{}': {}", source, std::strerror(err));
    }
    map_ = static_cast<const unsigned char*>(m);
  }
  ::close(fd);
  try {
    header_ = parse_shard_header(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(map_), map_size_), source);
    if (header_.file_bytes() != map_size_) {
      fail("token shard '{}' has the wrong size: expected {} bytes ({} tokens of {} bytes plus "
           "a {}-byte header), actual {} bytes; the file is {}; {}",
           source, header_.file_bytes(), header_.token_count, header_.token_width,
           ShardHeader::kSize, map_size_,
           map_size_ < header_.file_bytes() ? "truncated" : "longer than its header says",
           kRemake);
    }
    if (verify) {
      const std::uint64_t actual =
          fnv1a64(map_ + ShardHeader::kSize, static_cast<std::size_t>(header_.payload_bytes()));
      if (actual != header_.payload_checksum) {
        fail("token shard '{}' is corrupt: payload checksum expected {}, actual {}; {}", source,
             hex64(header_.payload_checksum), hex64(actual), kRemake);
      }
      for (std::uint64_t i = 0; i < header_.token_count; ++i) {
        const std::int32_t t = token(i);
        if (t < 0 || static_cast<std::uint32_t>(t) >= header_.vocab_size) {
          fail("token shard '{}' holds id {} at position {}, outside its vocabulary of {}; {}",
               source, t, i, header_.vocab_size, kRemake);
        }
      }
    }
  } catch (...) {
    unmap();
    throw;
  }
}

ShardReader::ShardReader(ShardReader&& other) noexcept
    : path_(std::move(other.path_)),
      header_(other.header_),
      map_(other.map_),
      map_size_(other.map_size_) {
  other.map_ = nullptr;
  other.map_size_ = 0;
}

ShardReader& ShardReader::operator=(ShardReader&& other) noexcept {
  if (this != &other) {
    unmap();
    path_ = std::move(other.path_);
    header_ = other.header_;
    map_ = other.map_;
    map_size_ = other.map_size_;
    other.map_ = nullptr;
    other.map_size_ = 0;
  }
  return *this;
}

ShardReader::~ShardReader() { unmap(); }

void ShardReader::unmap() {
  if (map_ != nullptr) ::munmap(const_cast<unsigned char*>(map_), map_size_);
  map_ = nullptr;
  map_size_ = 0;
}

std::int32_t ShardReader::token(std::uint64_t i) const {
  const unsigned char* p = map_ + ShardHeader::kSize + i * header_.token_width;
  if (header_.token_width == 2) return static_cast<std::int32_t>(p[0] | (p[1] << 8));
  return static_cast<std::int32_t>(get_u32(p));
}

void ShardReader::copy(std::uint64_t start, std::uint64_t count, std::int32_t* out) const {
  if (start > header_.token_count || count > header_.token_count - start) {
    fail("read of tokens [{}, {}) is outside shard '{}' of {} tokens", start, start + count,
         path_.string(), header_.token_count);
  }
  const unsigned char* p = map_ + ShardHeader::kSize + start * header_.token_width;
  if (header_.token_width == 2) {
    for (std::uint64_t i = 0; i < count; ++i, p += 2) {
      out[i] = static_cast<std::int32_t>(p[0] | (p[1] << 8));
    }
  } else {
    for (std::uint64_t i = 0; i < count; ++i, p += 4) {
      out[i] = static_cast<std::int32_t>(get_u32(p));
    }
  }
}

std::vector<std::int32_t> ShardReader::read_all() const {
  std::vector<std::int32_t> v(static_cast<std::size_t>(header_.token_count));
  copy(0, header_.token_count, v.data());
  return v;
}

}  // namespace difftx::data
