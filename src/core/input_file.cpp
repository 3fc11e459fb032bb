// Regular-file checks (stat/lstat/statfs before any open), non-blocking opens and exact,
// size-limited reads (see input_file.h).
#include "difftx/core/input_file.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "difftx/core/error.h"

namespace difftx {
namespace fs = std::filesystem;

namespace {

std::string describe_size(std::uint64_t bytes) {
  if (bytes >= (1ull << 30))
    return fmt::format("{} bytes ({:.1f} GiB)", bytes, bytes / double(1ull << 30));
  if (bytes >= (1ull << 20))
    return fmt::format("{} bytes ({:.1f} MiB)", bytes, bytes / double(1ull << 20));
  return fmt::format("{} bytes", bytes);
}

// The kind of a non-regular file, for "is a FIFO (named pipe)" style messages.
const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

// Kernel filesystems whose "files" are generated on read: sizes are 0 or meaningless and some
// reads block or fail (/proc/self/mem).
const char* virtual_filesystem(long type) {
  switch (type) {
    case PROC_SUPER_MAGIC:
      return "/proc";
    case SYSFS_MAGIC:
      return "/sys";
    case DEBUGFS_MAGIC:
      return "debugfs";
    case TRACEFS_MAGIC:
      return "tracefs";
    case SECURITYFS_MAGIC:
      return "securityfs";
    default:
      return nullptr;
  }
}

[[noreturn]] void fail_stat(const fs::path& path, std::string_view what, int err) {
  const std::string p = path.string();
  if (err == ENOENT) {
    struct stat lst {};
    if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
      std::error_code ec;
      const fs::path target = fs::read_symlink(path, ec);
      fail(
          "{} '{}' is a symbolic link to '{}', which does not exist (a dangling link): point it "
          "at an existing file",
          what, p, target.string());
    }
    fail("{} '{}' does not exist", what, p);
  }
  if (err == ELOOP) {
    fail(
        "{} '{}' is a symbolic link loop (too many levels of symbolic links): point the link at "
        "a real file",
        what, p);
  }
  if (err == ENOTDIR) fail("{} '{}' does not exist (a part of its path is not a folder)", what, p);
  if (err == EACCES) fail("cannot read {} '{}': permission denied", what, p);
  if (err == ENAMETOOLONG) fail("{} path '{}' is too long", what, p);
  fail("cannot read {} '{}': {}", what, p, std::strerror(err));
}

// Refuses everything but a regular file of a real filesystem within `max_bytes`.
void check_stat(const fs::path& path, std::string_view what, const struct stat& st,
                std::uint64_t max_bytes) {
  const std::string p = path.string();
  if (S_ISDIR(st.st_mode)) fail("{} '{}' is a folder, expected a file", what, p);
  if (!S_ISREG(st.st_mode)) {
    fail(
        "{} '{}' is {}, not a regular file: difftx reads only regular files (give the path of a "
        "file on disk)",
        what, p, kind_of(st.st_mode));
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size > max_bytes) {
    fail("{} '{}' is {}, more than the {} difftx accepts for it: is this the right file?", what, p,
         describe_size(size), describe_size(max_bytes));
  }
}

void check_filesystem(const fs::path& path, std::string_view what, long type) {
  if (const char* name = virtual_filesystem(type)) {
    fail(
        "{} '{}' is a file of the kernel's {} filesystem, not a regular file on disk: copy its "
        "content into a file first",
        what, path.string(), name);
  }
}

}  // namespace

std::uint64_t check_input_file(const fs::path& path, std::string_view what,
                               std::uint64_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail_stat(path, what, errno);
  check_stat(path, what, st, max_bytes);
  struct statfs sfs {};
  if (::statfs(path.c_str(), &sfs) == 0)
    check_filesystem(path, what, static_cast<long>(sfs.f_type));
  return static_cast<std::uint64_t>(st.st_size);
}

bool input_exists(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return true;
  // A dangling link or a loop exists as a name: let the read report it.
  return errno == ELOOP || (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode));
}

InputFile::InputFile(const fs::path& path, std::string_view what, std::uint64_t max_bytes)
    : path_(path), what_(what) {
  check_input_file(path, what, max_bytes);
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd_ < 0) fail_stat(path, what, errno);
  try {
    struct stat st {};
    if (::fstat(fd_, &st) != 0)
      fail("cannot read {} '{}': {}", what, path.string(), std::strerror(errno));
    check_stat(path, what, st, max_bytes);
    struct statfs sfs {};
    if (::fstatfs(fd_, &sfs) == 0) check_filesystem(path, what, static_cast<long>(sfs.f_type));
    size_ = static_cast<std::uint64_t>(st.st_size);
  } catch (...) {
    close();
    throw;
  }
}

InputFile::InputFile(InputFile&& other) noexcept
    : path_(std::move(other.path_)),
      what_(std::move(other.what_)),
      fd_(other.fd_),
      size_(other.size_) {
  other.fd_ = -1;
}

InputFile& InputFile::operator=(InputFile&& other) noexcept {
  if (this != &other) {
    close();
    path_ = std::move(other.path_);
    what_ = std::move(other.what_);
    fd_ = other.fd_;
    size_ = other.size_;
    other.fd_ = -1;
  }
  return *this;
}

InputFile::~InputFile() {
  close();
}

void InputFile::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void InputFile::read_at(std::uint64_t offset, void* dst, std::uint64_t bytes,
                        std::string_view part) const {
  if (offset > size_ || bytes > size_ - offset) {
    fail(
        "{} '{}': {} ({} bytes at offset {}) runs past the end of the file ({} bytes); the file "
        "is truncated or corrupt",
        what_, path_.string(), part, bytes, offset, size_);
  }
  auto* out = static_cast<char*>(dst);
  while (bytes > 0) {
    const std::size_t chunk = static_cast<std::size_t>(std::min<std::uint64_t>(bytes, 1u << 30));
    const ssize_t n = ::pread(fd_, out, chunk, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot read {} '{}' ({}): {}", what_, path_.string(), part, std::strerror(errno));
    }
    if (n == 0) {
      fail(
          "{} '{}' became shorter while it was read ({} at offset {}); was it being rewritten? "
          "Try again once it is complete",
          what_, path_.string(), part, offset);
    }
    out += n;
    offset += static_cast<std::uint64_t>(n);
    bytes -= static_cast<std::uint64_t>(n);
  }
}

std::vector<std::byte> InputFile::read_all() const {
  std::vector<std::byte> bytes(static_cast<std::size_t>(size_));
  read_at(0, bytes.data(), size_, "the content");
  return bytes;
}

std::string InputFile::read_all_text() const {
  std::string text(static_cast<std::size_t>(size_), '\0');
  read_at(0, text.data(), size_, "the content");
  return text;
}

std::vector<std::byte> read_file_bytes(const fs::path& path, std::string_view what,
                                       std::uint64_t max_bytes) {
  return InputFile(path, what, max_bytes).read_all();
}

std::string read_file_text(const fs::path& path, std::string_view what, std::uint64_t max_bytes) {
  return InputFile(path, what, max_bytes).read_all_text();
}

}  // namespace difftx
