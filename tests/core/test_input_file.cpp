// The regular-file layer (core/input_file.h): every kind of non-regular path is refused by name
// and without blocking, size limits hold, reads are exact, and errors stay on one line.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include "difftx/core/error.h"
#include "difftx/core/input_file.h"

namespace difftx {
namespace {
namespace fs = std::filesystem;

class InputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "difftx-input-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
    return dir_ / name;
  }
  fs::path dir_;
};

// The error of `read`, which must throw difftx::Error within a few seconds (a FIFO must not block).
std::string error_of(const std::function<void()>& read) {
  auto result = std::async(std::launch::async, [&]() -> std::string {
    try {
      read();
    } catch (const Error& e) {
      return e.what();
    }
    return "<no error>";
  });
  if (result.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "the read blocked for 10 s";
    std::abort();  // the reader thread cannot be cancelled; do not hang the suite
  }
  return result.get();
}

void expect_parts(const std::string& message, const std::vector<std::string>& parts) {
  for (const auto& p : parts)
    EXPECT_NE(message.find(p), std::string::npos) << "'" << p << "' not in: " << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

TEST_F(InputFileTest, ReadsARegularFileExactly) {
  const fs::path p = write("a.txt", std::string("abc\0def", 7));
  EXPECT_EQ(read_file_text(p), std::string("abc\0def", 7));
  EXPECT_EQ(read_file_bytes(p).size(), 7u);
  EXPECT_EQ(check_input_file(p, "file"), 7u);
  InputFile f(p, "test file");
  char buf[3];
  f.read_at(4, buf, 3, "the tail");
  EXPECT_EQ(std::string(buf, 3), "def");
  expect_parts(error_of([&] { f.read_at(5, buf, 3, "the tail"); }),
               {"test file", "the tail", "runs past the end"});
  // A symbolic link to a regular file is fine.
  fs::create_symlink(p, dir_ / "link");
  EXPECT_EQ(read_file_text(dir_ / "link").size(), 7u);
  EXPECT_EQ(read_file_text(write("empty", "")), "");
}

TEST_F(InputFileTest, RefusesMissingFoldersAndLinksByName) {
  expect_parts(error_of([&] { read_file_text(dir_ / "nope.json", "run config"); }),
               {"run config", "nope.json' does not exist"});
  expect_parts(error_of([&] { read_file_text(dir_); }), {"is a folder, expected a file"});
  fs::create_symlink(dir_ / "missing-target", dir_ / "dangling");
  expect_parts(error_of([&] { read_file_text(dir_ / "dangling"); }),
               {"dangling", "missing-target", "does not exist"});
  fs::create_symlink(dir_ / "loop_b", dir_ / "loop_a");
  fs::create_symlink(dir_ / "loop_a", dir_ / "loop_b");
  expect_parts(error_of([&] { read_file_text(dir_ / "loop_a", "model config"); }),
               {"model config", "loop_a", "symbolic link loop"});
  EXPECT_TRUE(input_exists(dir_ / "loop_a"));
  EXPECT_TRUE(input_exists(dir_ / "dangling"));
  EXPECT_FALSE(input_exists(dir_ / "nope.json"));
  write("plain", "x");
  expect_parts(error_of([&] { read_file_text(dir_ / "plain" / "inside"); }), {"does not exist"});
}

TEST_F(InputFileTest, RefusesFifosSocketsAndDevicesWithoutBlocking) {
  ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0600), 0);
  // Nobody writes to the FIFO: an open without O_NONBLOCK would block forever.
  expect_parts(error_of([&] { read_file_text(dir_ / "fifo", "run config"); }),
               {"run config", "fifo", "FIFO (named pipe)", "not a regular file"});
  expect_parts(error_of([&] { InputFile(dir_ / "fifo", "checkpoint config"); }), {"FIFO"});

  const int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock = (dir_ / "sock").string();
  ASSERT_LT(sock.size(), sizeof addr.sun_path);
  std::copy(sock.begin(), sock.end(), addr.sun_path);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  expect_parts(error_of([&] { read_file_text(sock); }), {"a socket"});
  ::close(s);

  expect_parts(error_of([&] { read_file_text("/dev/null"); }), {"/dev/null", "character device"});
  expect_parts(error_of([&] { read_file_text("/dev/zero"); }), {"character device"});
}

TEST_F(InputFileTest, RefusesKernelFiles) {
  expect_parts(error_of([&] { read_file_text("/proc/self/mem", "run config"); }),
               {"/proc/self/mem", "/proc filesystem"});
  expect_parts(error_of([&] { read_file_text("/proc/self/status"); }), {"/proc"});
  if (fs::exists("/sys/kernel/mm/transparent_hugepage/enabled")) {
    expect_parts(error_of([&] { read_file_text("/sys/kernel/mm/transparent_hugepage/enabled"); }),
                 {"/sys"});
  }
}

TEST_F(InputFileTest, SizeLimit) {
  const fs::path p = write("big", std::string(1000, 'x'));
  EXPECT_EQ(read_file_text(p, "file", 1000).size(), 1000u);
  expect_parts(error_of([&] { read_file_text(p, "tokenizer model", 999); }),
               {"tokenizer model", "1000 bytes", "more than the 999 bytes"});
}

TEST_F(InputFileTest, AFileThatShrinksWhileReadIsAnError) {
  const fs::path p = write("shrinks", std::string(4096, 'x'));
  InputFile f(p, "weights");
  fs::resize_file(p, 100);
  std::vector<char> buf(4096);
  expect_parts(error_of([&] { f.read_at(0, buf.data(), 4096, "the data"); }),
               {"weights", "became shorter while it was read"});
}

TEST(OneLine, ErrorsEscapeControlCharacters) {
  EXPECT_EQ(one_line("a\nb\tc\x1b"), "a\\nb\\tc\\x1b");
  const Error e("field 'x\ny' is bad");
  EXPECT_STREQ(e.what(), "field 'x\\ny' is bad");
}

}  // namespace
}  // namespace difftx
