// Reading files named by users (configs, checkpoints, data, imported folders) safely. Only
// regular files are opened: folders, FIFOs, sockets, devices, symbolic-link loops, dangling
// links and files of the kernel's virtual filesystems (/proc, /sys) are refused by name,
// without blocking. Reads are bounded by a size limit and exact: a file that shrinks while it is
// read is an error, never a partial result. Every reader of difftx goes through this file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace difftx {

// Size limit of a whole-file read when the caller gives none.
inline constexpr std::uint64_t kMaxWholeFileBytes = 4ull << 30;  // 4 GiB
// Size limit of JSON documents read whole (configs, indexes, metadata).
inline constexpr std::uint64_t kMaxJsonFileBytes = 64ull << 20;  // 64 MiB

// Checks, without opening it, that `path` names a regular file difftx may read, and returns its
// size. `what` names the file's role in errors ("run config", "checkpoint weights"; "file" when
// the role is unknown). Throws difftx::Error naming the path and the problem: missing,
// dangling symbolic link, symbolic-link loop, permission denied, folder, FIFO, socket, character
// or block device, file of /proc or /sys, larger than `max_bytes`.
std::uint64_t check_input_file(const std::filesystem::path& path, std::string_view what,
                               std::uint64_t max_bytes = kMaxWholeFileBytes);

// True when `path` names a regular file (following symbolic links), without throwing: the
// non-throwing form of a presence test ("does the folder hold a tokenizer.model?"). A path
// that exists but is not a readable regular file still returns true when it exists at all, so
// the following read reports what is wrong with it instead of "missing".
bool input_exists(const std::filesystem::path& path);

// A regular file opened read-only. The path is checked as above first; the open uses
// O_NONBLOCK and the descriptor is checked again, so a path swapped for a FIFO between the check
// and the open cannot block either.
class InputFile {
 public:
  InputFile(const std::filesystem::path& path, std::string_view what,
            std::uint64_t max_bytes = kMaxWholeFileBytes);
  InputFile(InputFile&& other) noexcept;
  InputFile& operator=(InputFile&& other) noexcept;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile();

  const std::filesystem::path& path() const { return path_; }
  std::uint64_t size() const { return size_; }  // at open time

  // Reads exactly `bytes` bytes at `offset` into `dst`; `part` names them in errors ("the
  // header", "tensor 'x'"). Past the end, or a file truncated meanwhile: difftx::Error.
  void read_at(std::uint64_t offset, void* dst, std::uint64_t bytes, std::string_view part) const;
  std::vector<std::byte> read_all() const;
  std::string read_all_text() const;

 private:
  void close();

  std::filesystem::path path_;
  std::string what_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

// Whole-file reads through InputFile (role "file" in messages unless `what` is given).
std::vector<std::byte> read_file_bytes(const std::filesystem::path& path,
                                       std::string_view what = "file",
                                       std::uint64_t max_bytes = kMaxWholeFileBytes);
std::string read_file_text(const std::filesystem::path& path, std::string_view what = "file",
                           std::uint64_t max_bytes = kMaxWholeFileBytes);

}  // namespace difftx
