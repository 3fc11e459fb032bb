// Plain, gzip and zstd byte sources and the line reader (see input_source.h).
#include "difftx/data/input_source.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "difftx/core/error.h"
#include "difftx/data/file_check.h"

namespace difftx::data {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kDiskChunk = 1 << 20;

// A file descriptor read in chunks.
class RawFile {
 public:
  explicit RawFile(const fs::path& path) : path_(path) {
    require_regular_file(path, "input", "pass text, JSONL or token files (or folders of them)");
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd_ < 0) fail("cannot open input '{}': {}", path.string(), std::strerror(errno));
  }
  ~RawFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawFile(const RawFile&) = delete;
  RawFile& operator=(const RawFile&) = delete;

  std::size_t read(char* out, std::size_t size) {
    for (;;) {
      const ssize_t n = ::read(fd_, out, size);
      if (n >= 0) {
        consumed_ += static_cast<std::uint64_t>(n);
        return static_cast<std::size_t>(n);
      }
      if (errno != EINTR) {
        fail("cannot read input '{}': {}", path_.string(), std::strerror(errno));
      }
    }
  }
  std::uint64_t consumed() const { return consumed_; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  int fd_ = -1;
  std::uint64_t consumed_ = 0;
};

class PlainSource : public ByteSource {
 public:
  explicit PlainSource(const fs::path& path) : file_(path) {}
  std::size_t read(char* out, std::size_t size) override { return file_.read(out, size); }
  std::uint64_t disk_bytes_read() const override { return file_.consumed(); }

 private:
  RawFile file_;
};

class GzipSource : public ByteSource {
 public:
  explicit GzipSource(const fs::path& path) : file_(path), in_(kDiskChunk) {
    std::memset(&z_, 0, sizeof z_);
    // 15 + 32: a zlib or gzip header, detected; concatenated members are read one after another.
    if (inflateInit2(&z_, 15 + 32) != Z_OK)
      fail("cannot start a gzip decoder for '{}'", path.string());
  }
  ~GzipSource() override { inflateEnd(&z_); }

  std::size_t read(char* out, std::size_t size) override {
    z_.next_out = reinterpret_cast<Bytef*>(out);
    z_.avail_out = static_cast<uInt>(std::min<std::size_t>(size, 1u << 30));
    while (z_.avail_out > 0 && !done_) {
      if (z_.avail_in == 0) {
        const std::size_t n = file_.read(reinterpret_cast<char*>(in_.data()), in_.size());
        if (n == 0) {
          if (!stream_end_) {
            fail(
                "gzip input '{}' is truncated (it ends inside a compressed stream): re-download "
                "or re-compress it",
                file_.path().string());
          }
          done_ = true;
          break;
        }
        z_.next_in = in_.data();
        z_.avail_in = static_cast<uInt>(n);
      }
      if (stream_end_) {
        // Another gzip member follows (as `cat a.gz b.gz` makes).
        if (inflateReset(&z_) != Z_OK) fail("gzip decoder failed on '{}'", file_.path().string());
        stream_end_ = false;
      }
      const int rc = inflate(&z_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        stream_end_ = true;
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        fail(
            "gzip input '{}' is corrupt ({}) after {} compressed bytes: re-download or "
            "re-compress it",
            file_.path().string(), z_.msg != nullptr ? z_.msg : "inflate error",
            file_.consumed() - z_.avail_in);
      }
    }
    return static_cast<std::size_t>(reinterpret_cast<char*>(z_.next_out) - out);
  }
  std::uint64_t disk_bytes_read() const override { return file_.consumed() - z_.avail_in; }

 private:
  RawFile file_;
  std::vector<Bytef> in_;
  z_stream z_;
  bool stream_end_ = false;
  bool done_ = false;
};

class ZstdSource : public ByteSource {
 public:
  explicit ZstdSource(const fs::path& path) : file_(path), in_(ZSTD_DStreamInSize()) {
    ds_ = ZSTD_createDStream();
    if (ds_ == nullptr) fail("cannot start a zstd decoder for '{}'", path.string());
    ZSTD_initDStream(ds_);
  }
  ~ZstdSource() override { ZSTD_freeDStream(ds_); }

  std::size_t read(char* out, std::size_t size) override {
    ZSTD_outBuffer output{out, size, 0};
    while (output.pos < output.size && !done_) {
      if (input_.pos == input_.size) {
        const std::size_t n = file_.read(in_.data(), in_.size());
        if (n == 0) {
          if (!frame_end_) {
            fail(
                "zstd input '{}' is truncated (it ends inside a frame): re-download or "
                "re-compress it",
                file_.path().string());
          }
          done_ = true;
          break;
        }
        input_ = ZSTD_inBuffer{in_.data(), n, 0};
      }
      const std::size_t rc = ZSTD_decompressStream(ds_, &output, &input_);
      if (ZSTD_isError(rc)) {
        fail(
            "zstd input '{}' is corrupt ({}) after {} compressed bytes: re-download or "
            "re-compress it",
            file_.path().string(), ZSTD_getErrorName(rc), disk_bytes_read());
      }
      frame_end_ = rc == 0;
    }
    return output.pos;
  }
  std::uint64_t disk_bytes_read() const override {
    return file_.consumed() - (input_.size - input_.pos);
  }

 private:
  RawFile file_;
  std::vector<char> in_;
  ZSTD_DStream* ds_ = nullptr;
  ZSTD_inBuffer input_{nullptr, 0, 0};
  bool frame_end_ = true;  // an empty file is an empty stream
  bool done_ = false;
};

// The first `n` bytes of a file (fewer if it is shorter).
std::string head_bytes(const fs::path& path, std::size_t n) {
  RawFile f(path);
  std::string bytes(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    const std::size_t r = f.read(bytes.data() + got, n - got);
    if (r == 0) break;
    got += r;
  }
  bytes.resize(got);
  return bytes;
}

}  // namespace

const char* compression_name(Compression c) {
  switch (c) {
    case Compression::none:
      return "none";
    case Compression::gzip:
      return "gzip";
    case Compression::zstd:
      return "zstd";
  }
  return "?";
}

Compression detect_compression(const fs::path& path) {
  const std::string head = head_bytes(path, 4);
  if (head.size() >= 2 && head[0] == '\x1f' && head[1] == '\x8b') return Compression::gzip;
  if (head == std::string("\x28\xb5\x2f\xfd", 4)) return Compression::zstd;
  return Compression::none;
}

std::string inner_file_name(const fs::path& path) {
  std::string name = path.filename().string();
  for (const char* suffix : {".gz", ".zst", ".zstd"}) {
    const std::string s = suffix;
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      return name.substr(0, name.size() - s.size());
    }
  }
  return name;
}

std::unique_ptr<ByteSource> open_byte_source(const fs::path& path) {
  switch (detect_compression(path)) {
    case Compression::gzip:
      return std::make_unique<GzipSource>(path);
    case Compression::zstd:
      return std::make_unique<ZstdSource>(path);
    case Compression::none:
      break;
  }
  return std::make_unique<PlainSource>(path);
}

std::uint64_t estimate_decompressed_size(const fs::path& path) {
  const std::uint64_t disk = require_regular_file(path, "input", "pass regular files");
  switch (detect_compression(path)) {
    case Compression::none:
      return disk;
    case Compression::zstd: {
      const std::string head = head_bytes(path, 18 /* ZSTD_FRAMEHEADERSIZE_MAX */);
      const unsigned long long size = ZSTD_getFrameContentSize(head.data(), head.size());
      // One frame recording its size covers the whole file when it is that frame's only one;
      // multi-frame files (rare) are then underestimated, which only affects sampling rates.
      if (size != ZSTD_CONTENTSIZE_UNKNOWN && size != ZSTD_CONTENTSIZE_ERROR) return size;
      return 4 * disk;
    }
    case Compression::gzip: {
      // ISIZE, the last 4 bytes: the size modulo 2^32 of the last member, trusted when the
      // file is one member below 4 GB (then it is at least the compressed size).
      if (disk >= 18 && disk < (std::uint64_t{1} << 32)) {
        unsigned char tail[4] = {};
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        const bool ok = fd >= 0 && ::pread(fd, tail, 4, static_cast<off_t>(disk - 4)) == 4;
        if (fd >= 0) ::close(fd);
        const std::uint64_t isize = tail[0] | (tail[1] << 8) | (tail[2] << 16) |
                                    (static_cast<std::uint64_t>(tail[3]) << 24);
        if (ok && isize >= disk) return isize;
      }
      return 4 * disk;
    }
  }
  return disk;
}

bool LineReader::next(std::string& line, std::size_t max_bytes) {
  line.clear();
  for (;;) {
    const std::size_t nl = buffer_.find('\n', pos_);
    if (nl != std::string::npos) {
      line.append(buffer_, pos_, nl - pos_);
      pos_ = nl + 1;
      ++line_number_;
      return true;
    }
    line.append(buffer_, pos_, std::string::npos);
    buffer_.clear();
    pos_ = 0;
    if (line.size() > max_bytes) {
      fail("line {} of '{}' is longer than {} bytes: split it into smaller documents",
           line_number_ + 1, name_, max_bytes);
    }
    if (eof_) {
      if (line.empty()) return false;
      ++line_number_;
      return true;
    }
    buffer_.resize(kDiskChunk);
    const std::size_t n = source_.read(buffer_.data(), buffer_.size());
    buffer_.resize(n);
    if (n == 0) eof_ = true;
  }
}

}  // namespace difftx::data
