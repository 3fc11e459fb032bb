// Safetensors files (the Hugging Face checkpoint format): atomic writing, strictly validated
// reading, and header-only inspection. Layout: u64 little-endian header length N, N bytes of
// JSON header (padded with spaces to a multiple of 8), then the raw little-endian tensor data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "difftx/core/tensor.h"

namespace difftx {

// Writes `tensors` (any device; copied to the host) under their names, plus the optional
// "__metadata__" string map, atomically (difftx/core/atomic_file.h). Dtypes map to F32, F64,
// BF16 and I32. The header lists the tensors in the given order; the data section is ordered
// by element size (largest first) so every tensor is aligned to its element size. Throws
// difftx::Error for an empty, duplicate or reserved ("__metadata__") name or an undefined tensor.
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// One tensor entry of a header, as stored.
struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // as stored: "F16", "BF16", "F32", "F64", "I32" or "I64"
  DType load_dtype;   // what load_safetensors returns: F16 -> f32, I64 -> i32, others as is
  Shape shape;
  std::uint64_t begin;  // byte offsets [begin, end) relative to the start of the data section
  std::uint64_t end;
};

// A validated header: every check of load_safetensors except reading the data itself.
struct SafetensorsHeader {
  std::map<std::string, std::string> metadata;
  std::vector<SafetensorsEntry> entries;  // in header order
  std::uint64_t data_start = 0;           // 8 + header length: file offset of the data section
  std::uint64_t file_size = 0;

  bool contains(const std::string& name) const;
  const SafetensorsEntry& at(const std::string& name) const;  // throws difftx::Error if absent
};

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;
  std::vector<std::pair<std::string, Tensor>> tensors;  // CPU tensors, in header order
  std::vector<SafetensorsEntry> entries;                // as stored (dtype before loading)

  bool contains(const std::string& name) const;
  const Tensor& at(const std::string& name) const;  // throws difftx::Error if absent
};

// Reads and validates the header without touching the tensor data. Throws difftx::Error naming
// the file (and the tensor, where one is at fault) when: the path is not a regular file
// (core/input_file.h); the file is shorter than 8 bytes; the header length runs past the end of
// the file or exceeds 100 MB; the header is not a JSON object (within the nesting limit of
// core/json_input.h) of well-formed entries (dtype, shape, data_offsets) with an optional
// string-to-string "__metadata__"; a dtype is unknown or unsupported; a name repeats;
// data_offsets disagree with dtype and shape, overlap, leave a gap, or run past the file; bytes
// follow the last tensor.
SafetensorsHeader read_safetensors_header(const std::filesystem::path& path);

// The same checks on bytes in memory: `file_start` holds (at least) the first 8 + header-length
// bytes of a file of `file_size` bytes; `source` names it in errors. (The fuzz harness' entry.)
SafetensorsHeader parse_safetensors_header(std::span<const std::byte> file_start,
                                           std::uint64_t file_size, const std::string& source);

// Reads the whole file into CPU tensors (see SafetensorsEntry::load_dtype for conversions;
// an I64 value outside the i32 range is an error naming the tensor).
SafetensorsFile load_safetensors(const std::filesystem::path& path);

}  // namespace difftx
