// Atomic file writes (temp file + fsync + rename + directory fsync).
#include "difftx/core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "difftx/core/error.h"

namespace difftx {
namespace fs = std::filesystem;

namespace {

std::string errno_text() {
  return std::strerror(errno);
}

// Owns a temporary file descriptor; removes the temporary file unless committed.
class TempFile {
 public:
  explicit TempFile(const fs::path& target) : target_(target) {
    fs::path dir = target.parent_path().empty() ? fs::path(".") : target.parent_path();
    std::random_device rd;
    for (int attempt = 0; attempt < 16 && fd_ < 0; ++attempt) {
      temp_ = dir / fmt::format(".{}.tmp{:08x}", target.filename().string(), rd());
      fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd_ < 0 && errno != EEXIST) break;
    }
    if (fd_ < 0) {
      fail("cannot create a file in '{}': {} (check that the folder exists and is writable)",
           dir.string(), errno_text());
    }
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) {
      std::error_code ec;
      fs::remove(temp_, ec);
    }
  }

  void write(const void* data, std::size_t size) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      ssize_t n = ::write(fd_, p, size);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail("cannot write '{}': {} (is the disk full?); the previous file is untouched",
             target_.string(), errno_text());
      }
      p += n;
      size -= static_cast<std::size_t>(n);
    }
  }

  void commit() {
    if (::fsync(fd_) != 0) {
      fail("cannot flush '{}' to disk: {}; the previous file is untouched", target_.string(),
           errno_text());
    }
    if (::close(fd_) != 0) {
      fd_ = -1;
      fail("cannot close '{}': {}; the previous file is untouched", target_.string(), errno_text());
    }
    fd_ = -1;
    if (::rename(temp_.c_str(), target_.c_str()) != 0) {
      fail("cannot move the new '{}' into place: {}", target_.string(), errno_text());
    }
    committed_ = true;
    fs::path dir = target_.parent_path().empty() ? fs::path(".") : target_.parent_path();
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  fs::path target_;
  fs::path temp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

void write_file_atomic_streamed(const fs::path& path,
                                const std::function<void(const ByteSink&)>& writer) {
  TempFile temp(path);
  writer([&](const void* data, std::size_t size) { temp.write(data, size); });
  temp.commit();
}

void write_file_atomic(const fs::path& path, std::span<const std::byte> bytes) {
  write_file_atomic_streamed(path, [&](const ByteSink& sink) { sink(bytes.data(), bytes.size()); });
}

void write_file_atomic(const fs::path& path, std::string_view text) {
  write_file_atomic_streamed(path, [&](const ByteSink& sink) { sink(text.data(), text.size()); });
}

void ensure_writable_directory(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) fail("cannot create folder '{}': {}", dir.string(), ec.message());
  } else if (!fs::is_directory(dir, ec)) {
    fail("'{}' exists but is not a folder", dir.string());
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    fail("folder '{}' is not writable: {}", dir.string(), errno_text());
  }
}

}  // namespace difftx
