// Which paths data readers accept: regular files only. A FIFO, a device, a socket, a folder, a
// dangling symbolic link or a symlink loop is refused by name before it is opened, so no reader
// blocks on a pipe or reads a device. (Local to data until core's input-safety helper lands.)
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace difftx::data {

// Throws difftx::Error unless `path` is a regular file (symbolic links to one are fine). The
// message reads "<what> '<path>' is <kind>: <fix>", e.g. "token shard 'x' is a FIFO (named
// pipe), not a regular file: ...". Returns the file's size in bytes.
std::uint64_t require_regular_file(const std::filesystem::path& path, std::string_view what,
                                   std::string_view fix);

// What `path` is, for messages: "a regular file", "a folder", "a FIFO (named pipe)", "a
// character device", "a block device", "a socket", "a symbolic link to '<target>', which does
// not exist", "a loop of symbolic links", "missing".
std::string describe_path_kind(const std::filesystem::path& path);

}  // namespace difftx::data
