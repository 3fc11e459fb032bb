// Safetensors writing (atomic, aligned data layout) and strictly validated reading.
#include "difftx/core/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/core/input_file.h"
#include "difftx/core/json_input.h"

namespace difftx {
namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; difftx supports little-endian hosts only");

namespace {

constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;  // the limit of the reference library
constexpr const char* kMetadataKey = "__metadata__";

struct StoredDType {
  const char* name;
  std::size_t size;  // bytes per element as stored
  DType load;        // dtype after loading
};

// The stored dtypes difftx reads.
constexpr StoredDType kReadable[] = {
    {"F16", 2, DType::f32}, {"BF16", 2, DType::bf16}, {"F32", 4, DType::f32},
    {"F64", 8, DType::f64}, {"I32", 4, DType::i32},   {"I64", 8, DType::i32},
};
// Valid safetensors dtypes difftx does not read (reported as unsupported, not unknown).
const std::set<std::string> kOtherKnown = {"BOOL", "U8",      "I8",      "U16",     "I16",
                                           "U32",  "U64",     "F8_E4M3", "F8_E5M2", "F8_E8M0",
                                           "F4",   "F6_E2M3", "F6_E3M2", "C64"};

const char* stored_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "F32";
    case DType::f64:
      return "F64";
    case DType::bf16:
      return "BF16";
    case DType::i32:
      return "I32";
  }
  return "?";
}

const StoredDType* find_readable(const std::string& name) {
  for (const auto& d : kReadable) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

// IEEE binary16 -> binary32, exact (normals, subnormals, infinities, NaN).
float half_to_float(std::uint16_t h) {
  std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;
  std::uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {
    // Subnormal: normalise the mantissa.
    int shift = 0;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      ++shift;
    }
    mantissa &= 0x3ffu;
    bits = sign | (static_cast<std::uint32_t>(113 - shift) << 23) | (mantissa << 13);
  }
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

std::string entry_text(const ordered_json& v) {
  return json_snippet(v, 80);
}

// Parses one tensor entry of the header; `file` and `name` only label errors.
SafetensorsEntry parse_entry(const std::string& file, const std::string& name,
                             const ordered_json& value) {
  const std::string shown = text_snippet(name);
  auto bad = [&](const std::string& what) -> void {
    fail("{}: tensor '{}': {} (header entry {}); the file is corrupt or not a safetensors file",
         file, shown, what, entry_text(value));
  };
  if (!value.is_object()) bad("the entry must be a JSON object");
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (it.key() != "dtype" && it.key() != "shape" && it.key() != "data_offsets") {
      bad(fmt::format("unknown field '{}'", it.key()));
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!value.contains(key)) bad(fmt::format("missing field '{}'", key));
  }
  SafetensorsEntry e;
  e.name = name;
  const auto& dtype = value.at("dtype");
  if (!dtype.is_string()) bad("'dtype' must be a string");
  e.dtype = dtype.get<std::string>();
  const StoredDType* stored = find_readable(e.dtype);
  if (!stored) {
    if (kOtherKnown.count(e.dtype)) {
      fail(
          "{}: tensor '{}': dtype '{}' is not supported (difftx reads F16, BF16, F32, F64, I32 "
          "and I64); convert the tensor before importing",
          file, shown, e.dtype);
    }
    fail(
        "{}: tensor '{}': unknown dtype '{}' (safetensors dtypes difftx reads: F16, BF16, F32, "
        "F64, I32, I64)",
        file, shown, e.dtype);
  }
  e.load_dtype = stored->load;

  const auto& shape = value.at("shape");
  if (!shape.is_array()) bad("'shape' must be an array of non-negative integers");
  std::uint64_t bytes = stored->size;
  bool overflow = false;
  for (const auto& dim : shape) {
    if (!dim.is_number_unsigned()) bad("'shape' must be an array of non-negative integers");
    std::uint64_t d = dim.get<std::uint64_t>();
    if (d > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) overflow = true;
    e.shape.push_back(static_cast<std::int64_t>(d));
    overflow = overflow || __builtin_mul_overflow(bytes, d, &bytes);
  }
  if (overflow) bad("'shape' is too large (its byte size overflows 64 bits)");

  const auto& offsets = value.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    bad("'data_offsets' must be an array [begin, end] of two non-negative integers");
  }
  e.begin = offsets[0].get<std::uint64_t>();
  e.end = offsets[1].get<std::uint64_t>();
  if (e.end < e.begin) {
    fail("{}: tensor '{}': data_offsets [{}, {}] end before they begin", file, shown, e.begin,
         e.end);
  }
  if (e.end - e.begin != bytes) {
    fail(
        "{}: tensor '{}': data_offsets [{}, {}] hold {} bytes but dtype {} and shape {} need {} "
        "bytes",
        file, shown, e.begin, e.end, e.end - e.begin, e.dtype, shape_string(e.shape), bytes);
  }
  return e;
}

// Checks that the entries tile the data section exactly: in range, no overlap, no gap, nothing
// after the last tensor.
void check_layout(const std::string& file, const std::vector<SafetensorsEntry>& entries,
                  std::uint64_t data_size) {
  for (const auto& e : entries) {
    if (e.end > data_size) {
      fail(
          "{}: tensor '{}': data_offsets [{}, {}] run past the end of the data section ({} "
          "bytes); the file is truncated or corrupt",
          file, e.name, e.begin, e.end, data_size);
    }
  }
  std::vector<std::size_t> order(entries.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return std::pair(entries[a].begin, entries[a].end) <
           std::pair(entries[b].begin, entries[b].end);
  });
  std::uint64_t expected = 0;
  const SafetensorsEntry* previous = nullptr;
  for (std::size_t i : order) {
    const auto& e = entries[i];
    if (e.begin < expected) {
      fail(
          "{}: tensor '{}': data_offsets [{}, {}] overlap tensor '{}' [{}, {}]; the file is "
          "corrupt",
          file, e.name, e.begin, e.end, previous->name, previous->begin, previous->end);
    }
    if (e.begin > expected) {
      fail(
          "{}: tensor '{}': data_offsets [{}, {}] leave a gap of {} unused bytes before it "
          "(tensors must tile the data section); the file is corrupt",
          file, e.name, e.begin, e.end, e.begin - expected);
    }
    expected = e.end;
    previous = &e;
  }
  if (expected != data_size) {
    if (previous) {
      fail(
          "{}: {} bytes of trailing data after the last tensor '{}' (data section is {} bytes, "
          "tensors end at {}); the file is corrupt",
          file, data_size - expected, previous->name, data_size, expected);
    }
    fail("{}: {} bytes of trailing data but the header lists no tensor; the file is corrupt", file,
         data_size);
  }
}

// Decodes the header JSON (`text`, header_len bytes) of a file of `file_size` bytes.
SafetensorsHeader decode_header(std::string_view text, std::uint64_t file_size,
                                const std::string& file) {
  // Duplicate names, excessive nesting and overflowing numbers are refused by the parser.
  const ordered_json header = parse_ordered_json(
      text, file + ": header", JsonLimits{.max_depth = 8, .max_bytes = kMaxHeaderBytes});
  if (!header.is_object()) {
    fail("{}: header must be a JSON object, got {}; the file is corrupt or not a safetensors file",
         file, header.type_name());
  }
  SafetensorsHeader result;
  result.data_start = 8 + text.size();
  result.file_size = file_size;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == kMetadataKey) {
      if (!it.value().is_object()) {
        fail("{}: '__metadata__' must be an object of string values, got {}", file,
             entry_text(it.value()));
      }
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) {
          fail("{}: '__metadata__' entry '{}' must be a string, got {}", file,
               text_snippet(m.key()), entry_text(m.value()));
        }
        result.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    result.entries.push_back(parse_entry(file, it.key(), it.value()));
  }
  check_layout(file, result.entries, file_size - result.data_start);
  return result;
}

std::uint64_t header_length(const unsigned char* len_bytes, std::uint64_t file_size,
                            const std::string& file) {
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > file_size - 8) {
    fail(
        "{}: header length {} runs past the end of the file ({} bytes); the file is truncated "
        "or not a safetensors file",
        file, header_len, file_size);
  }
  if (header_len > kMaxHeaderBytes) {
    fail("{}: header length {} exceeds the safetensors limit of {} bytes", file, header_len,
         kMaxHeaderBytes);
  }
  return header_len;
}

void check_minimum_size(std::uint64_t file_size, const std::string& file) {
  if (file_size < 8) {
    fail(
        "{}: file is {} bytes, shorter than the 8-byte safetensors header length; the file is "
        "truncated or not a safetensors file",
        file, file_size);
  }
}

InputFile open_safetensors(const fs::path& path) {
  if (!input_exists(path)) fail("{}: safetensors file does not exist", path.string());
  return InputFile(path, "safetensors file", std::numeric_limits<std::int64_t>::max());
}

SafetensorsHeader read_header(const InputFile& in) {
  const std::string file = in.path().string();
  check_minimum_size(in.size(), file);
  unsigned char len_bytes[8];
  in.read_at(0, len_bytes, 8, "the header length");
  const std::uint64_t header_len = header_length(len_bytes, in.size(), file);
  std::string text(static_cast<std::size_t>(header_len), '\0');
  in.read_at(8, text.data(), header_len, "the header");
  return decode_header(text, in.size(), file);
}

Tensor read_tensor(const InputFile& in, const SafetensorsHeader& header,
                   const SafetensorsEntry& e) {
  Tensor t = Tensor::empty(e.shape, e.load_dtype, Device::cpu);
  const std::uint64_t offset = header.data_start + e.begin;
  const std::uint64_t bytes = e.end - e.begin;
  const std::string what = fmt::format("tensor '{}'", e.name);
  const auto n = static_cast<std::size_t>(t.numel());
  if (e.dtype == "F16") {
    std::vector<std::uint16_t> half(n);
    in.read_at(offset, half.data(), bytes, what);
    float* out = t.data<float>();
    for (std::size_t i = 0; i < n; ++i) out[i] = half_to_float(half[i]);
  } else if (e.dtype == "I64") {
    std::vector<std::int64_t> wide(n);
    in.read_at(offset, wide.data(), bytes, what);
    std::int32_t* out = t.data<std::int32_t>();
    for (std::size_t i = 0; i < n; ++i) {
      if (wide[i] < std::numeric_limits<std::int32_t>::min() ||
          wide[i] > std::numeric_limits<std::int32_t>::max()) {
        fail(
            "{}: tensor '{}': I64 value {} at index {} does not fit in i32 (difftx stores "
            "integers as i32)",
            in.path().string(), e.name, wide[i], i);
      }
      out[i] = static_cast<std::int32_t>(wide[i]);
    }
  } else {
    in.read_at(offset, t.raw(), bytes, what);
  }
  return t;
}

}  // namespace

bool SafetensorsHeader::contains(const std::string& name) const {
  return std::any_of(entries.begin(), entries.end(),
                     [&](const SafetensorsEntry& e) { return e.name == name; });
}

const SafetensorsEntry& SafetensorsHeader::at(const std::string& name) const {
  for (const auto& e : entries) {
    if (e.name == name) return e;
  }
  fail("safetensors header has no tensor named '{}' ({} tensors)", name, entries.size());
}

bool SafetensorsFile::contains(const std::string& name) const {
  return std::any_of(tensors.begin(), tensors.end(),
                     [&](const auto& entry) { return entry.first == name; });
}

const Tensor& SafetensorsFile::at(const std::string& name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return t;
  }
  fail("safetensors file has no tensor named '{}' ({} tensors)", name, tensors.size());
}

SafetensorsHeader read_safetensors_header(const fs::path& path) {
  return read_header(open_safetensors(path));
}

SafetensorsHeader parse_safetensors_header(std::span<const std::byte> file_start,
                                           std::uint64_t file_size, const std::string& source) {
  check_minimum_size(file_size, source);
  if (file_start.size() < 8) fail("{}: fewer than 8 bytes given for the header length", source);
  const auto* p = reinterpret_cast<const unsigned char*>(file_start.data());
  const std::uint64_t header_len = header_length(p, file_size, source);
  if (file_start.size() - 8 < header_len) {
    fail("{}: the header ({} bytes) is not within the {} bytes given", source, header_len,
         file_start.size());
  }
  return decode_header(std::string_view(reinterpret_cast<const char*>(p + 8), header_len),
                       file_size, source);
}

SafetensorsFile load_safetensors(const fs::path& path) {
  const InputFile in = open_safetensors(path);
  SafetensorsHeader header = read_header(in);
  SafetensorsFile file;
  file.metadata = header.metadata;
  file.entries = header.entries;
  for (const auto& e : header.entries)
    file.tensors.emplace_back(e.name, read_tensor(in, header, e));
  return file;
}

void save_safetensors(const fs::path& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const std::string file = path.string();
  std::set<std::string> names;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty()) fail("{}: cannot save a tensor with an empty name", file);
    if (name == kMetadataKey) fail("{}: '{}' is reserved and cannot name a tensor", file, name);
    if (!names.insert(name).second) fail("{}: tensor '{}' is listed twice", file, name);
    if (!tensor.defined()) fail("{}: tensor '{}' is undefined (never allocated)", file, name);
  }

  // Data layout: largest element size first (stable), so each tensor is aligned to its size.
  std::vector<std::size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return dtype_size(tensors[a].second.dtype()) > dtype_size(tensors[b].second.dtype());
  });
  std::vector<std::uint64_t> begin(tensors.size());
  std::uint64_t offset = 0;
  for (std::size_t i : order) {
    begin[i] = offset;
    offset += tensors[i].second.nbytes();
  }

  ordered_json header = ordered_json::object();
  if (!metadata.empty()) {
    ordered_json meta = ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header[kMetadataKey] = std::move(meta);
  }
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i].second;
    header[tensors[i].first] = ordered_json{{"dtype", stored_name(t.dtype())},
                                            {"shape", t.shape()},
                                            {"data_offsets", {begin[i], begin[i] + t.nbytes()}}};
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const ordered_json::exception& e) {
    fail("{}: cannot encode the header (names and metadata must be valid UTF-8): {}", file,
         e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char len_bytes[8];
  std::uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(len >> (8 * i));

  write_file_atomic_streamed(path, [&](const ByteSink& sink) {
    sink(len_bytes, 8);
    sink(text.data(), text.size());
    for (std::size_t i : order) {
      const Tensor& t = tensors[i].second;
      if (t.nbytes() == 0) continue;
      if (t.device() == Device::cpu) {
        sink(t.raw(), t.nbytes());
      } else {
        Tensor host = t.to(Device::cpu);
        sink(host.raw(), host.nbytes());
      }
    }
  });
}

}  // namespace difftx
