// Token shard writing (streamed, atomic) and memory-mapped reading with size, layout and
// checksum checks.
#include "difftx/data/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <random>

#include "difftx/core/checksum.h"
#include "difftx/core/error.h"
#include "difftx/data/file_check.h"

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
  put_u32(out + 48, h.flags);
  put_u32(out + 52, h.record_tokens);
  put_u64(out + 56, checksum64(out, 56));
}

const char* kRemake = "run `difftx data prepare` again to rebuild the shards";
constexpr std::size_t kWriteBuffer = 1 << 20;

void write_all(int fd, const unsigned char* p, std::size_t n, const fs::path& target) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("cannot write token shard '{}': {} (is the disk full?)", target.string(),
           std::strerror(errno));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

}  // namespace

std::uint32_t token_width_for(std::uint32_t vocab_size) {
  return vocab_size <= 65536 ? 2 : 4;
}

// ---- ShardWriter ------------------------------------------------------------------------

struct ShardWriter::Hash {
  Checksum64 sum;
};

ShardWriter::ShardWriter(const fs::path& path, std::uint32_t vocab_size, ShardLayout layout)
    : path_(path), hash_(std::make_unique<Hash>()) {
  if (vocab_size == 0) fail("cannot write shard '{}' with an empty vocabulary", path.string());
  header_.token_width = token_width_for(vocab_size);
  header_.vocab_size = vocab_size;
  header_.flags = layout.label_mask ? ShardHeader::kFlagLabelMask : 0;
  header_.record_tokens = layout.record_tokens;
  const fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::random_device rd;
  for (int attempt = 0; attempt < 16 && fd_ < 0; ++attempt) {
    temp_ = dir / fmt::format(".{}.tmp{:08x}", path.filename().string(), rd());
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0 && errno != EEXIST) break;
  }
  if (fd_ < 0) {
    fail("cannot create token shard '{}': {} (check that the folder exists and is writable)",
         path.string(), std::strerror(errno));
  }
  const unsigned char zeros[ShardHeader::kSize] = {};
  try {
    write_all(fd_, zeros, sizeof zeros, path_);  // the header is written last, in place
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    std::error_code ec;
    fs::remove(temp_, ec);
    throw;
  }
  buffer_.reserve(kWriteBuffer + 8);
}

ShardWriter::~ShardWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) {
    std::error_code ec;
    fs::remove(temp_, ec);
  }
}

void ShardWriter::flush_buffer() {
  if (buffer_.empty()) return;
  hash_->sum.update(buffer_.data(), buffer_.size());
  write_all(fd_, buffer_.data(), buffer_.size(), path_);
  buffer_.clear();
}

void ShardWriter::append(std::span<const std::int32_t> ids, std::span<const std::uint8_t> labels) {
  DIFFTX_CHECK(!finished_, "token shard '{}' was already finished", path_.string());
  if (header_.has_label_mask() ? labels.size() != ids.size() : !labels.empty()) {
    fail("token shard '{}': {} labels for {} ids (a shard {} a label mask)", path_.string(),
         labels.size(), ids.size(), header_.has_label_mask() ? "with" : "without");
  }
  const std::uint32_t width = header_.token_width;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const std::int32_t t = ids[i];
    if (t < 0 || static_cast<std::uint32_t>(t) >= header_.vocab_size) {
      fail("cannot write shard '{}': token {} at position {} is outside [0, {})", path_.string(), t,
           tokens_ + i, header_.vocab_size);
    }
    const auto u = static_cast<std::uint32_t>(t);
    buffer_.push_back(static_cast<unsigned char>(u));
    buffer_.push_back(static_cast<unsigned char>(u >> 8));
    if (width == 4) {
      buffer_.push_back(static_cast<unsigned char>(u >> 16));
      buffer_.push_back(static_cast<unsigned char>(u >> 24));
    }
    if (header_.has_label_mask()) {
      const std::uint64_t k = tokens_ + i;
      if (k % 8 == 0) mask_.push_back(0);
      if (labels[i] > 1) {
        fail("token shard '{}': label {} at position {} is not 0 or 1", path_.string(),
             static_cast<int>(labels[i]), k);
      }
      mask_.back() = static_cast<unsigned char>(mask_.back() | (labels[i] << (k % 8)));
    }
    if (buffer_.size() >= kWriteBuffer) flush_buffer();
  }
  tokens_ += ids.size();
}

ShardHeader ShardWriter::finish() {
  DIFFTX_CHECK(!finished_, "token shard '{}' was already finished", path_.string());
  if (header_.record_tokens > 0 && tokens_ % header_.record_tokens != 0) {
    fail("token shard '{}' holds {} tokens, not a whole number of {}-token examples",
         path_.string(), tokens_, header_.record_tokens);
  }
  flush_buffer();
  if (!mask_.empty()) {
    hash_->sum.update(mask_.data(), mask_.size());
    write_all(fd_, mask_.data(), mask_.size(), path_);
  }
  header_.token_count = tokens_;
  header_.document_count = documents_;
  header_.payload_checksum = hash_->sum.value();
  unsigned char header[ShardHeader::kSize];
  encode_header(header_, header);
  if (::pwrite(fd_, header, sizeof header, 0) != static_cast<ssize_t>(sizeof header)) {
    fail("cannot write the header of token shard '{}': {}", path_.string(), std::strerror(errno));
  }
  if (::fsync(fd_) != 0) {
    fail("cannot flush token shard '{}' to disk: {}", path_.string(), std::strerror(errno));
  }
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0)
    fail("cannot close token shard '{}': {}", path_.string(), std::strerror(errno));
  if (::rename(temp_.c_str(), path_.c_str()) != 0) {
    fail("cannot move the new token shard '{}' into place: {}", path_.string(),
         std::strerror(errno));
  }
  finished_ = true;
  const fs::path dir = path_.parent_path().empty() ? fs::path(".") : path_.parent_path();
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // the rename is durable
    ::close(dfd);
  }
  mask_.clear();
  mask_.shrink_to_fit();
  return header_;
}

void write_shard(const fs::path& path, std::span<const std::int32_t> tokens,
                 std::uint32_t vocab_size, std::uint64_t document_count) {
  write_shard(path, tokens, {}, vocab_size, document_count, {});
}

void write_shard(const fs::path& path, std::span<const std::int32_t> tokens,
                 std::span<const std::uint8_t> labels, std::uint32_t vocab_size,
                 std::uint64_t document_count, ShardLayout layout) {
  ShardWriter w(path, vocab_size, layout);
  w.append(tokens, labels);
  w.add_documents(document_count);
  w.finish();
}

// ---- Reading ----------------------------------------------------------------------------

ShardHeader parse_shard_header(std::span<const std::byte> bytes, const std::string& source) {
  if (bytes.size() < ShardHeader::kSize) {
    fail(
        "'{}' is too short to be a token shard: expected at least {} bytes (the header), "
        "actual {} bytes; {}",
        source, ShardHeader::kSize, bytes.size(), kRemake);
  }
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (std::memcmp(p, ShardHeader::kMagic, 8) != 0) {
    fail("'{}' is not a difftx token shard (its first 8 bytes are not \"DTXTOKS1\")", source);
  }
  ShardHeader h;
  h.version = get_u32(p + 8);
  if (h.version == 1) {
    fail(
        "'{}' is a token shard of format version 1 (FNV-1a checksums), written by an older "
        "difftx; this difftx reads version {}: {}",
        source, ShardHeader::kVersion, kRemake);
  }
  if (h.version != ShardHeader::kVersion) {
    fail("'{}' is a token shard of version {}, this difftx reads version {}; {}", source, h.version,
         ShardHeader::kVersion, kRemake);
  }
  const std::uint64_t stored = get_u64(p + 56);
  const std::uint64_t actual = checksum64(p, 56);
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
  h.flags = get_u32(p + 48);
  h.record_tokens = get_u32(p + 52);
  if ((h.token_width != 2 && h.token_width != 4) || header_size != ShardHeader::kSize ||
      h.vocab_size == 0 || h.token_width != token_width_for(h.vocab_size) ||
      h.token_count > std::numeric_limits<std::uint64_t>::max() / 8 ||
      (h.flags & ~ShardHeader::kFlagLabelMask) != 0 ||
      (h.record_tokens > 0 && h.token_count % h.record_tokens != 0)) {
    fail(
        "'{}' has an inconsistent header (token width {}, header size {}, vocabulary {}, "
        "flags {}, record length {}, {} tokens); {}",
        source, h.token_width, header_size, h.vocab_size, h.flags, h.record_tokens, h.token_count,
        kRemake);
  }
  return h;
}

ShardReader::ShardReader(const fs::path& path, bool verify) : path_(path) {
  const std::string source = path.string();
  require_regular_file(path, "token shard",
                       "pass the shard files written by `difftx data prepare`");
  // O_NONBLOCK: should the path have become a FIFO since the check, open() still returns.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    fail("cannot open token shard '{}': {}{}", source, std::strerror(errno),
         errno == ENOENT ? " (run `difftx data prepare` to make shards)" : "");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("token shard '{}' is not a regular file", source);
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
      fail(
          "token shard '{}' has the wrong size: expected {} bytes ({} tokens of {} bytes{} "
          "plus a {}-byte header), actual {} bytes; the file is {}; {}",
          source, header_.file_bytes(), header_.token_count, header_.token_width,
          header_.has_label_mask() ? fmt::format(", a {}-byte label mask", header_.mask_bytes())
                                   : std::string(),
          ShardHeader::kSize, map_size_,
          map_size_ < header_.file_bytes() ? "truncated" : "longer than its header says", kRemake);
    }
    if (verify) {
      const std::uint64_t actual =
          checksum64(map_ + ShardHeader::kSize, static_cast<std::size_t>(header_.payload_bytes()));
      if (actual != header_.payload_checksum) {
        fail("token shard '{}' is corrupt: payload checksum expected {}, actual {}; {}", source,
             hex64(header_.payload_checksum), hex64(actual), kRemake);
      }
      if (max_id() >= header_.vocab_size) {
        for (std::uint64_t i = 0; i < header_.token_count; ++i) {
          const auto t = static_cast<std::uint32_t>(token(i));
          if (t >= header_.vocab_size) {
            fail("token shard '{}' holds id {} at position {}, outside its vocabulary of {}; {}",
                 source, t, i, header_.vocab_size, kRemake);
          }
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

ShardReader::~ShardReader() {
  unmap();
}

void ShardReader::unmap() {
  if (map_ != nullptr) ::munmap(const_cast<unsigned char*>(map_), map_size_);
  map_ = nullptr;
  map_size_ = 0;
}

std::uint32_t ShardReader::max_id() const {
  const unsigned char* p = map_ + ShardHeader::kSize;
  const std::uint64_t n = header_.token_count;
  std::uint32_t best = 0;
  if constexpr (std::endian::native == std::endian::little) {
    // Whole words at a time (the compiler vectorises the reduction).
    if (header_.token_width == 2) {
      std::uint16_t m = 0;
      for (std::uint64_t i = 0; i < n; ++i) {
        std::uint16_t v;
        std::memcpy(&v, p + 2 * i, 2);
        m = v > m ? v : m;
      }
      return m;
    }
    for (std::uint64_t i = 0; i < n; ++i) {
      std::uint32_t v;
      std::memcpy(&v, p + 4 * i, 4);
      best = v > best ? v : best;
    }
    return best;
  }
  for (std::uint64_t i = 0; i < n; ++i) best = std::max(best, static_cast<std::uint32_t>(token(i)));
  return best;
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

bool ShardReader::label(std::uint64_t i) const {
  if (!header_.has_label_mask()) return true;
  const unsigned char* mask = map_ + ShardHeader::kSize + header_.id_bytes();
  return ((mask[i / 8] >> (i % 8)) & 1) != 0;
}

void ShardReader::copy_labels(std::uint64_t start, std::uint64_t count, std::uint8_t* out) const {
  if (start > header_.token_count || count > header_.token_count - start) {
    fail("read of labels [{}, {}) is outside shard '{}' of {} tokens", start, start + count,
         path_.string(), header_.token_count);
  }
  for (std::uint64_t i = 0; i < count; ++i) out[i] = label(start + i) ? 1 : 0;
}

}  // namespace difftx::data
