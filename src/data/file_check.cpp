// Regular-file checks for data inputs (see file_check.h): lstat/stat, never open().
#include "difftx/data/file_check.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "difftx/core/error.h"

namespace difftx::data {
namespace fs = std::filesystem;

std::string describe_path_kind(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ELOOP) return "a loop of symbolic links";
    struct stat lst {};
    if (::lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
      std::error_code ec;
      const fs::path target = fs::read_symlink(path, ec);
      return ec ? std::string("a broken symbolic link")
                : "a symbolic link to '" + target.string() + "', which does not exist";
    }
    if (err == ENOENT || err == ENOTDIR) return "missing";
    return std::string("unreadable (") + std::strerror(err) + ")";
  }
  if (S_ISREG(st.st_mode)) return "a regular file";
  if (S_ISDIR(st.st_mode)) return "a folder";
  if (S_ISFIFO(st.st_mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(st.st_mode)) return "a character device";
  if (S_ISBLK(st.st_mode)) return "a block device";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  return "not a regular file";
}

std::uint64_t require_regular_file(const fs::path& path, std::string_view what,
                                   std::string_view fix) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    return static_cast<std::uint64_t>(st.st_size);
  }
  const std::string kind = describe_path_kind(path);
  if (kind == "missing") fail("{} '{}' does not exist: {}", what, path.string(), fix);
  fail("{} '{}' is {}, not a regular file: {}", what, path.string(), kind, fix);
}

}  // namespace difftx::data
