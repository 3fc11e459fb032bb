// Safetensors I/O: round trips of every dtype, the exact byte layout, header-only reads,
// F16/I64 conversion, and one difftx::Error per kind of corrupt file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "difftx/core/error.h"
#include "difftx/core/safetensors.h"

namespace difftx {
namespace {
namespace fs = std::filesystem;

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           fmt::format("difftx_safetensors_{}_{}", ::getpid(), info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path path(const std::string& name) const { return dir_ / name; }

  // Writes a file from a header text (padded as given) and raw data bytes.
  fs::path write_raw(const std::string& name, const std::string& header,
                     const std::vector<unsigned char>& data, std::uint64_t declared_len = ~0ull) {
    fs::path p = path(name);
    std::ofstream out(p, std::ios::binary);
    std::uint64_t len = declared_len == ~0ull ? header.size() : declared_len;
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((len >> (8 * i)) & 0xff));
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(reinterpret_cast<const char*>(data.data()),
              static_cast<std::streamsize>(data.size()));
    return p;
  }

  std::vector<unsigned char> file_bytes(const fs::path& p) const {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  fs::path dir_;
};

// Expects load_safetensors (and read_safetensors_header) to throw an Error whose message
// contains the file path and every string in `parts`.
void expect_load_error(const fs::path& p, const std::vector<std::string>& parts) {
  for (int which = 0; which < 2; ++which) {
    try {
      if (which == 0)
        (void)load_safetensors(p);
      else
        (void)read_safetensors_header(p);
      ADD_FAILURE() << "no error for " << p << (which == 0 ? " (load)" : " (header)");
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
      for (const auto& part : parts)
        EXPECT_NE(msg.find(part), std::string::npos) << part << " / " << msg;
    }
  }
}

std::vector<unsigned char> zeros(std::size_t n) {
  return std::vector<unsigned char>(n, 0);
}

Tensor f32_tensor(Shape shape, float start) {
  std::vector<float> v(static_cast<std::size_t>(shape_numel(shape)));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = start + 0.25f * static_cast<float>(i);
  return Tensor::from_vector(std::move(shape), v, DType::f32);
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

TEST_F(SafetensorsTest, RoundTripsEveryDtypeInOrderWithMetadata) {
  Tensor f64 = Tensor::empty({3, 2}, DType::f64);
  for (int i = 0; i < 6; ++i) f64.data<double>()[i] = 1.0 / 3.0 + i * 1e-300;
  Tensor bf16 = Tensor::from_vector({5}, {1.0f, -2.5f, 3.0e8f, 1e-20f, 0.0f}, DType::bf16);
  Tensor i32 = Tensor::empty({2, 2}, DType::i32);
  std::int32_t ints[] = {0, -1, 2147483647, -2147483647 - 1};
  std::memcpy(i32.raw(), ints, sizeof ints);
  Tensor f32 = f32_tensor({2, 3, 4}, -1.5f);
  Tensor scalar = f32_tensor({}, 7.0f);
  Tensor empty = Tensor::zeros({0, 3}, DType::f32);
  // Odd sizes first so the writer must reorder the data section for alignment.
  std::vector<std::pair<std::string, Tensor>> tensors = {{"bf16", bf16},     {"z.f32", f32},
                                                         {"f64", f64},       {"i32", i32},
                                                         {"scalar", scalar}, {"empty", empty}};
  std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "ünïcode \"quoted\""}};
  fs::path p = path("all.safetensors");
  save_safetensors(p, tensors, meta);

  SafetensorsFile loaded = load_safetensors(p);
  EXPECT_EQ(loaded.metadata, meta);
  ASSERT_EQ(loaded.tensors.size(), tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(loaded.tensors[i].first, tensors[i].first);
    EXPECT_EQ(loaded.tensors[i].second.device(), Device::cpu);
    EXPECT_TRUE(same_bytes(loaded.tensors[i].second, tensors[i].second)) << tensors[i].first;
  }
  EXPECT_TRUE(loaded.contains("f64"));
  EXPECT_FALSE(loaded.contains("missing"));
  EXPECT_EQ(loaded.at("scalar").shape(), Shape{});
  EXPECT_EQ(loaded.at("empty").shape(), (Shape{0, 3}));
  EXPECT_THROW((void)loaded.at("missing"), Error);

  SafetensorsHeader header = read_safetensors_header(p);
  EXPECT_EQ(header.metadata, meta);
  EXPECT_EQ(header.data_start % 8, 0u);
  EXPECT_EQ(header.file_size, fs::file_size(p));
  ASSERT_EQ(header.entries.size(), tensors.size());
  EXPECT_EQ(header.at("bf16").dtype, "BF16");
  EXPECT_EQ(header.at("f64").dtype, "F64");
  EXPECT_EQ(header.at("i32").dtype, "I32");
  EXPECT_EQ(header.at("z.f32").dtype, "F32");
  EXPECT_EQ(header.at("z.f32").shape, (Shape{2, 3, 4}));
  EXPECT_EQ(header.at("f64").begin, 0u);  // the 8-byte dtype comes first
  for (const auto& e : header.entries) {
    EXPECT_EQ(e.begin % dtype_size(e.load_dtype), 0u) << e.name << " misaligned";
  }
  EXPECT_THROW((void)header.at("missing"), Error);
}

TEST_F(SafetensorsTest, RowViewsAreSavedFromTheirOffset) {
  Tensor full = f32_tensor({4, 3}, 0.0f);
  fs::path p = path("view.safetensors");
  save_safetensors(p, {{"mid", full.rows(1, 3)}});
  auto loaded = load_safetensors(p);
  EXPECT_EQ(loaded.at("mid").to_float_vector(),
            (std::vector<float>{0.75f, 1.0f, 1.25f, 1.5f, 1.75f, 2.0f}));
}

TEST_F(SafetensorsTest, WritesTheStandardByteLayout) {
  fs::path p = path("layout.safetensors");
  save_safetensors(p, {{"a", Tensor::from_vector({2}, {1.0f, 2.0f})}});
  auto bytes = file_bytes(p);
  // The header the reference Python library writes for this tensor, padded to 8 bytes.
  std::string json = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string padded = json + std::string((8 - json.size() % 8) % 8, ' ');
  ASSERT_EQ(bytes.size(), 8 + padded.size() + 8);
  std::uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | bytes[static_cast<std::size_t>(i)];
  EXPECT_EQ(len, padded.size());
  EXPECT_EQ(std::string(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(len)), padded);
  float values[2];
  std::memcpy(values, bytes.data() + 8 + len, 8);
  EXPECT_EQ(values[0], 1.0f);
  EXPECT_EQ(values[1], 2.0f);
}

TEST_F(SafetensorsTest, NoMetadataKeyWithoutMetadata) {
  fs::path p = path("nometa.safetensors");
  save_safetensors(p, {{"x", f32_tensor({1}, 0.0f)}});
  auto bytes = file_bytes(p);
  std::string text(bytes.begin(), bytes.end());
  EXPECT_EQ(text.find("__metadata__"), std::string::npos);
  EXPECT_TRUE(load_safetensors(p).metadata.empty());
}

TEST_F(SafetensorsTest, EmptyFileListRoundTrips) {
  fs::path p = path("none.safetensors");
  save_safetensors(p, {}, {{"k", "v"}});
  auto loaded = load_safetensors(p);
  EXPECT_TRUE(loaded.tensors.empty());
  EXPECT_EQ(loaded.metadata.at("k"), "v");
}

TEST_F(SafetensorsTest, OverwritesAtomicallyAndKeepsOldFileOnError) {
  fs::path p = path("over.safetensors");
  save_safetensors(p, {{"x", f32_tensor({2}, 1.0f)}});
  save_safetensors(p, {{"y", f32_tensor({3}, 2.0f)}});
  auto loaded = load_safetensors(p);
  EXPECT_FALSE(loaded.contains("x"));
  EXPECT_EQ(loaded.at("y").numel(), 3);
  auto before = file_bytes(p);
  EXPECT_THROW(save_safetensors(p, {{"y", f32_tensor({1}, 0.0f)}, {"y", f32_tensor({1}, 0.0f)}}),
               Error);
  EXPECT_EQ(file_bytes(p), before);
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(dir_)) ++files;
  EXPECT_EQ(files, 1u) << "a temporary file was left behind";
}

TEST_F(SafetensorsTest, RejectsBadNamesAndTensorsOnSave) {
  fs::path p = path("bad.safetensors");
  auto expect_error = [&](const std::vector<std::pair<std::string, Tensor>>& t,
                          const std::string& part) {
    try {
      save_safetensors(p, t);
      ADD_FAILURE() << "no error for " << part;
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(part), std::string::npos) << msg;
      EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
    }
  };
  Tensor x = f32_tensor({1}, 0.0f);
  expect_error({{"a", x}, {"a", x}}, "'a' is listed twice");
  expect_error({{"__metadata__", x}}, "reserved");
  expect_error({{"", x}}, "empty name");
  expect_error({{"u", Tensor()}}, "'u' is undefined");
  expect_error({{"bad\xff", x}}, "UTF-8");
  EXPECT_FALSE(fs::exists(p));
  EXPECT_THROW(save_safetensors(dir_ / "no_such_folder" / "x.safetensors", {{"a", x}}), Error);
}

TEST_F(SafetensorsTest, ConvertsF16ToF32Exactly) {
  // 1, -2, 65504 (max), 2^-24 (smallest subnormal), 2^-14 (smallest normal), +inf, -0.
  std::vector<std::uint16_t> halves = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x0400, 0x7C00, 0x8000};
  std::vector<unsigned char> data(halves.size() * 2);
  std::memcpy(data.data(), halves.data(), data.size());
  fs::path p = write_raw("f16.safetensors",
                         R"({"h":{"dtype":"F16","shape":[7],"data_offsets":[0,14]}})", data);
  auto loaded = load_safetensors(p);
  const Tensor& h = loaded.at("h");
  ASSERT_EQ(h.dtype(), DType::f32);
  const float* v = h.data<float>();
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], -2.0f);
  EXPECT_EQ(v[2], 65504.0f);
  EXPECT_EQ(v[3], std::ldexp(1.0f, -24));
  EXPECT_EQ(v[4], std::ldexp(1.0f, -14));
  EXPECT_TRUE(std::isinf(v[5]) && v[5] > 0);
  EXPECT_TRUE(v[6] == 0.0f && std::signbit(v[6]));
  // A NaN stays a NaN.
  std::uint16_t nan = 0x7E00;
  std::memcpy(data.data(), &nan, 2);
  p = write_raw("f16nan.safetensors", R"({"h":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})",
                {data[0], data[1]});
  EXPECT_TRUE(std::isnan(load_safetensors(p).at("h").data<float>()[0]));
  EXPECT_EQ(read_safetensors_header(p).at("h").load_dtype, DType::f32);
}

TEST_F(SafetensorsTest, ConvertsI64ToI32WithRangeCheck) {
  std::vector<std::int64_t> ok = {5, -7, 2147483647};
  std::vector<unsigned char> data(24);
  std::memcpy(data.data(), ok.data(), 24);
  fs::path p = write_raw("i64.safetensors",
                         R"({"ids":{"dtype":"I64","shape":[3],"data_offsets":[0,24]}})", data);
  auto loaded = load_safetensors(p);
  ASSERT_EQ(loaded.at("ids").dtype(), DType::i32);
  EXPECT_EQ(loaded.at("ids").data<std::int32_t>()[1], -7);
  EXPECT_EQ(loaded.at("ids").data<std::int32_t>()[2], 2147483647);
  std::int64_t big = 2147483648LL;
  std::memcpy(data.data() + 8, &big, 8);
  p = write_raw("i64big.safetensors",
                R"({"ids":{"dtype":"I64","shape":[3],"data_offsets":[0,24]}})", data);
  EXPECT_NO_THROW((void)read_safetensors_header(p));  // the header is fine; the value is not
  try {
    (void)load_safetensors(p);
    ADD_FAILURE() << "no range error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("'ids'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("2147483648"), std::string::npos) << msg;
  }
}

TEST_F(SafetensorsTest, AcceptsHeaderPaddingAndKeysInAnyOrder) {
  std::vector<unsigned char> data(12, 0);
  fs::path p = write_raw(
      "pad.safetensors",
      R"({"__metadata__":{"a":"b"},"y":{"shape":[1],"data_offsets":[8,12],"dtype":"I32"},)"
      R"("x":{"data_offsets":[0,8],"dtype":"F64","shape":[]}}       )",
      data);
  auto loaded = load_safetensors(p);
  ASSERT_EQ(loaded.tensors.size(), 2u);
  EXPECT_EQ(loaded.tensors[0].first, "y");  // header order, not data order
  EXPECT_EQ(loaded.tensors[1].first, "x");
  EXPECT_EQ(loaded.metadata.at("a"), "b");
}

TEST_F(SafetensorsTest, MissingFileAndFolder) {
  expect_load_error(path("missing.safetensors"), {"does not exist"});
  expect_load_error(dir_, {"folder"});
}

TEST_F(SafetensorsTest, FileShorterThan8Bytes) {
  fs::path p = path("short.safetensors");
  { std::ofstream(p, std::ios::binary) << "abc"; }
  expect_load_error(p, {"3 bytes", "shorter than"});
  fs::path e = path("empty.safetensors");
  { std::ofstream(e, std::ios::binary); }
  expect_load_error(e, {"0 bytes"});
}

TEST_F(SafetensorsTest, HeaderLengthBeyondFile) {
  std::string h = R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  fs::path p = write_raw("len.safetensors", h, zeros(4), h.size() + 100);
  expect_load_error(p, {"header length", "runs past the end"});
  fs::path huge = write_raw("huge.safetensors", "{}", {}, ~0ull - 1);
  expect_load_error(huge, {"header length"});
}

TEST_F(SafetensorsTest, InvalidJson) {
  expect_load_error(write_raw("json.safetensors", R"({"x":{"dtype":"F32",)", zeros(4)),
                    {"not valid JSON"});
  expect_load_error(write_raw("arr.safetensors", "[1, 2]  ", {}), {"JSON object"});
  expect_load_error(write_raw("utf.safetensors", "{\"x\xff\":{}}", {}), {"not valid JSON"});
}

TEST_F(SafetensorsTest, MalformedEntries) {
  auto check = [&](const std::string& file, const std::string& entry,
                   const std::vector<std::string>& parts) {
    expect_load_error(write_raw(file, R"({"t":)" + entry + "}", zeros(4)), parts);
  };
  check("notobj.safetensors", "[1]", {"'t'", "JSON object"});
  check("missing.safetensors", R"({"dtype":"F32","shape":[1]})", {"'t'", "data_offsets"});
  check("extra.safetensors", R"({"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1})",
        {"'t'", "unknown field 'x'"});
  check("negshape.safetensors", R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})",
        {"'t'", "shape"});
  check("floatshape.safetensors", R"({"dtype":"F32","shape":[1.0],"data_offsets":[0,4]})",
        {"'t'", "shape"});
  check("dtypetype.safetensors", R"({"dtype":3,"shape":[1],"data_offsets":[0,4]})",
        {"'t'", "dtype"});
  check("offs3.safetensors", R"({"dtype":"F32","shape":[1],"data_offsets":[0,4,4]})",
        {"'t'", "data_offsets"});
  check("reversed.safetensors", R"({"dtype":"F32","shape":[0],"data_offsets":[4,0]})",
        {"'t'", "end before they begin"});
  check("overflow.safetensors",
        R"({"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,4]})",
        {"'t'", "overflows"});
}

TEST_F(SafetensorsTest, UnknownAndUnsupportedDtypes) {
  expect_load_error(write_raw("unk.safetensors",
                              R"({"w":{"dtype":"Q7","shape":[1],"data_offsets":[0,4]}})", zeros(4)),
                    {"'w'", "unknown dtype 'Q7'"});
  expect_load_error(write_raw("u8.safetensors",
                              R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", zeros(4)),
                    {"'w'", "'U8' is not supported"});
}

TEST_F(SafetensorsTest, ShapeOffsetInconsistency) {
  expect_load_error(
      write_raw("inc.safetensors", R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})",
                zeros(12)),
      {"'w'", "hold 12 bytes", "need 16 bytes"});
}

TEST_F(SafetensorsTest, OverlappingOffsets) {
  expect_load_error(write_raw("overlap.safetensors",
                              R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                              zeros(12)),
                    {"'b'", "overlap", "'a'"});
  expect_load_error(write_raw("same.safetensors",
                              R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                              R"("b":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})",
                              zeros(4)),
                    {"overlap"});
}

TEST_F(SafetensorsTest, OutOfRangeOffsets) {
  expect_load_error(
      write_raw("range.safetensors", R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
                zeros(12)),
      {"'w'", "run past the end of the data section (12 bytes)"});
}

TEST_F(SafetensorsTest, GapBetweenTensors) {
  expect_load_error(write_raw("gap.safetensors",
                              R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                              R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                              zeros(12)),
                    {"'b'", "gap of 4"});
}

TEST_F(SafetensorsTest, TrailingGarbage) {
  expect_load_error(
      write_raw("trail.safetensors", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                zeros(7)),
      {"3 bytes of trailing data", "'w'"});
  expect_load_error(write_raw("trail0.safetensors", "{}      ", zeros(5)),
                    {"5 bytes of trailing data"});
}

TEST_F(SafetensorsTest, DuplicateNames) {
  expect_load_error(write_raw("dup.safetensors",
                              R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                              R"("w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                              zeros(8)),
                    {"'w' appears twice"});
}

TEST_F(SafetensorsTest, BadMetadata) {
  expect_load_error(write_raw("meta1.safetensors", R"({"__metadata__":{"k":1}})", {}),
                    {"__metadata__", "'k'", "string"});
  expect_load_error(write_raw("meta2.safetensors", R"({"__metadata__":[1]})", {}),
                    {"__metadata__", "object"});
}

TEST_F(SafetensorsTest, ReadableByThePythonReferenceParser) {
  const char* python = "/usr/bin/python3";
  if (!fs::exists(python)) GTEST_SKIP() << "no " << python;
  fs::path in = path("cpp.safetensors");
  fs::path out = path("py.safetensors");
  Tensor f64 = Tensor::empty({2}, DType::f64);
  f64.data<double>()[0] = 0.1;
  f64.data<double>()[1] = -3.0;
  Tensor i32 = Tensor::empty({3}, DType::i32);
  for (int i = 0; i < 3; ++i) i32.data<std::int32_t>()[i] = -i * 1000;
  save_safetensors(in,
                   {{"a", f32_tensor({2, 2}, 0.5f)},
                    {"b", f64},
                    {"c", i32},
                    {"d", Tensor::from_vector({2}, {1.5f, -0.25f}, DType::bf16)}},
                   {{"m", "1"}});
  // The Python parser reads the file, doubles every float tensor, and writes it back.
  std::string script = fmt::format(
      "import sys; sys.path.insert(0, '{}/tests/reference'); import safetensors_io as s; "
      "t, m = s.load_file('{}'); "
      "t = {{k: (v * 2 if v.is_floating_point() else v) for k, v in t.items()}}; "
      "s.save_file('{}', t, m)",
      DIFFTX_SOURCE_DIR, in.string(), out.string());
  std::string command = fmt::format("{} -c \"{}\"", python, script);
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  auto loaded = load_safetensors(out);
  EXPECT_EQ(loaded.metadata.at("m"), "1");
  EXPECT_EQ(loaded.at("a").to_float_vector(), (std::vector<float>{1.0f, 1.5f, 2.0f, 2.5f}));
  EXPECT_EQ(loaded.at("b").dtype(), DType::f64);
  EXPECT_EQ(loaded.at("b").data<double>()[0], 0.2);
  EXPECT_EQ(loaded.at("c").to_double_vector(), (std::vector<double>{0, -1000, -2000}));
  EXPECT_EQ(loaded.at("d").dtype(), DType::bf16);
  EXPECT_EQ(loaded.at("d").to_float_vector(), (std::vector<float>{3.0f, -0.5f}));
}

}  // namespace
}  // namespace difftx
