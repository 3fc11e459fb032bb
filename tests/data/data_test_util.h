// Helpers for the data tests: temporary folders, file writing, the installed Brown corpus,
// running the `difftx` program and a small tokenizer trained on part of Brown.
#pragma once

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "difftx/core/atomic_file.h"
#include "difftx/core/checksum.h"
#include "difftx/data/brown.h"
#include "difftx/data/corpus.h"
#include "difftx/data/tokenizer.h"

namespace difftx::data {
namespace fs = std::filesystem;
}

namespace difftx::data::test_util {

// A fresh folder under the system temp folder, removed with its contents at the end.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "difftx-data-test-XXXXXX").string();
    char* made = ::mkdtemp(pattern.data());
    if (made == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = made;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

inline void write_text(const fs::path& path, std::string_view text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// Every regular file under `dir` (relative path -> contents), to compare folders.
inline std::vector<std::pair<std::string, std::string>> folder_contents(const fs::path& dir) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).string();
    out.emplace_back(rel, e.is_regular_file() ? read_file_text(e.path()) : std::string("<dir>"));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// `files` small text documents with a shared vocabulary of 14 words (doc00.txt, ...).
inline void write_small_corpus(const fs::path& dir, int files, std::uint64_t seed = 1) {
  const char* words[] = {"alpha", "beta",  "gamma",  "delta", "river",  "stone",  "light",
                         "north", "quiet", "market", "story", "winter", "garden", "signal"};
  std::uint64_t x = seed;
  for (int f = 0; f < files; ++f) {
    std::string text;
    for (int para = 0; para < 8; ++para) {
      for (int w = 0; w < 60; ++w) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        text += words[(x >> 33) % 14];
        text += (w % 12 == 11) ? ". " : " ";
      }
      text += "\n\n";
    }
    char name[32];
    std::snprintf(name, sizeof name, "doc%02d.txt", f);
    write_text(dir / name, text);
  }
}

// Every regular file under `dir` (relative path -> XXH3 of its contents): compares folders
// without printing their bytes when they differ.
inline std::vector<std::pair<std::string, std::string>> folder_digest(const fs::path& dir) {
  auto contents = folder_contents(dir);
  for (auto& [name, bytes] : contents) bytes = hex64(checksum64(bytes));
  return contents;
}

// The installed Brown corpus; fails the test (not skips) with the fix if it is missing.
inline fs::path brown_dir_or_fail() {
  const fs::path dir = default_brown_dir();
  if (!fs::exists(dir / "cats.txt")) {
    ADD_FAILURE() << "the Brown corpus is not installed at " << dir
                  << ": run scripts/fetch-corpus.sh (CI runs it before the tests)";
  }
  return dir;
}

struct CommandResult {
  int exit_code = -1;
  std::string output;    // stdout and stderr together
  long max_rss_kib = 0;  // peak resident memory of the child process
};

// Runs `difftx <args>` (args are shell words; paths in tests hold no spaces) under a time
// limit, so a command that hangs fails the test (exit code 124) instead of blocking it.
inline CommandResult run_cli(const std::string& args, const fs::path& log, int timeout_s = 900) {
  const std::string cmd = "timeout -k 5 " + std::to_string(timeout_s) + " " +
                          std::string(DIFFTX_CLI) + " " + args + " > " + log.string() + " 2>&1";
  CommandResult r;
  const int status = std::system(cmd.c_str());
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.output = read_file_text(log);
  struct rusage usage {};
  ::getrusage(RUSAGE_CHILDREN, &usage);
  r.max_rss_kib = usage.ru_maxrss;
  return r;
}

// Lines of the first `docs` Brown documents, for quick tokenizer training.
inline std::vector<std::string> brown_sentences(std::size_t docs) {
  const Corpus corpus = Corpus::brown(brown_dir_or_fail());
  std::vector<std::string> lines;
  for (std::size_t i = 0; i < docs && i < corpus.size(); ++i) {
    const std::string text = corpus.text(i);
    std::size_t pos = 0;
    while (pos < text.size()) {
      std::size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      if (end > pos) lines.push_back(text.substr(pos, end - pos));
      pos = end + 1;
    }
  }
  return lines;
}

// A small tokenizer (800 pieces) trained on 40 Brown documents; about half a second.
inline Tokenizer small_brown_tokenizer() {
  TokenizerTrainOptions options;
  options.vocab_size = 800;
  return Tokenizer::train(brown_sentences(40), options);
}

}  // namespace difftx::data::test_util
