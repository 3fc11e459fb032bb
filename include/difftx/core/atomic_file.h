// Crash-safe file output: data goes to a temporary file in the target folder, is fsync'ed,
// then renamed over the target, so readers see either the old file or the complete new one.
// (Whole-file reads, read_file_bytes / read_file_text, live in difftx/core/input_file.h.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "difftx/core/input_file.h"

namespace difftx {

// Writes `bytes` to `path` atomically. Throws difftx::Error naming the path on any failure
// (missing or unwritable folder, full disk); the target is then left untouched.
void write_file_atomic(const std::filesystem::path& path, std::span<const std::byte> bytes);
void write_file_atomic(const std::filesystem::path& path, std::string_view text);

// Streams output through `writer` (called with a sink that appends bytes), with the same
// all-or-nothing guarantee. For files too large to build in memory first.
using ByteSink = std::function<void(const void* data, std::size_t size)>;
void write_file_atomic_streamed(const std::filesystem::path& path,
                                const std::function<void(const ByteSink&)>& writer);

// Makes sure `dir` exists and is writable (creates it if needed); throws a clear Error if not.
void ensure_writable_directory(const std::filesystem::path& dir);

}  // namespace difftx
