// The resumable staging folder of `data prepare` (see prepare_state.h).
#include "difftx/data/prepare_state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/data/data_folder.h"

namespace difftx::data {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kStateFile = "state.json";
constexpr const char* kLockFile = "lock";

void fsync_dir(const fs::path& dir) {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace

json StreamPosition::to_json() const {
  return {{"file", file}, {"doc", doc}, {"offset", offset}, {"skip", skip}};
}

StreamPosition StreamPosition::from_json(const json& j) {
  StreamPosition p;
  p.file = j.at("file").get<std::uint64_t>();
  p.doc = j.at("doc").get<std::uint64_t>();
  p.offset = j.at("offset").get<std::uint64_t>();
  p.skip = j.at("skip").get<std::uint64_t>();
  return p;
}

bool item_before(const StreamPosition& a, const StreamPosition& b) {
  if (a.file != b.file) return a.file < b.file;
  if (a.doc != b.doc) return a.doc < b.doc;
  return a.offset < b.offset;
}

bool same_item(const StreamPosition& a, const StreamPosition& b) {
  return a.file == b.file && a.doc == b.doc && a.offset == b.offset;
}

json SplitProgress::to_json() const {
  return {{"shards", shards}, {"next", next.to_json()}, {"documents", documents},
          {"bytes", bytes},   {"tokens", tokens},       {"skipped", skipped}};
}

SplitProgress SplitProgress::from_json(const json& j) {
  SplitProgress p;
  for (const json& s : j.at("shards")) p.shards.push_back(s);
  p.next = StreamPosition::from_json(j.at("next"));
  p.documents = j.at("documents").get<std::uint64_t>();
  p.bytes = j.at("bytes").get<std::uint64_t>();
  p.tokens = j.at("tokens").get<std::uint64_t>();
  p.skipped = j.at("skipped").get<std::uint64_t>();
  return p;
}

PrepareStaging::PrepareStaging(const fs::path& out, const std::string& key)
    : out_(out.empty() ? fs::path(".") : out), key_(key) {
  std::error_code ec;
  created_out_ = !fs::exists(out_, ec);
  ensure_writable_directory(out_);
  dir_ = out_ / kPartialDir;
  fs::create_directory(dir_, ec);
  if (ec) fail("cannot create staging folder '{}': {}", dir_.string(), ec.message());
  const fs::path lock = dir_ / kLockFile;
  lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) fail("cannot create '{}': {}", lock.string(), std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd_);
    lock_fd_ = -1;
    committed_ = true;  // the folder belongs to the other run: leave it alone
    fail(
        "another `difftx data prepare` is writing into '{}' (its staging folder '{}' is "
        "locked): wait for it to finish, or choose another --out",
        out_.string(), dir_.string());
  }
  // Resume when the previous run had the same options and inputs.
  const fs::path state_path = dir_ / kStateFile;
  if (fs::exists(state_path, ec)) {
    try {
      state_ = json::parse(read_file_text(state_path));
      if (state_.at("key").get<std::string>() == key_) {
        resumed_ = true;
        tokenizer_fp_ = state_.at("tokenizer").get<std::string>();
        (void)progress("train");
        (void)progress("validation");
      } else {
        note_ = "the inputs or options changed since the interrupted run, so it starts over";
      }
    } catch (const std::exception&) {
      resumed_ = false;
      note_ = "the interrupted run's state is unreadable, so it starts over";
    }
  }
  // Keep only what the resumed state names; clear everything else.
  std::set<std::string> keep = {kLockFile};
  if (resumed_) {
    keep.insert(kStateFile);
    keep.insert(kTokenizerFile);
    for (const char* split : {"train", "validation"}) {
      for (const json& s : progress(split).shards) keep.insert(s.at("file").get<std::string>());
    }
  } else {
    state_ = json();
  }
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    if (!keep.count(entry.path().filename().string())) fs::remove_all(entry.path(), ec);
  }
}

PrepareStaging::~PrepareStaging() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(dir_, ec);
  if (created_out_ && fs::is_empty(out_, ec)) fs::remove(out_, ec);
}

SplitProgress PrepareStaging::progress(const std::string& split) const {
  if (!resumed_ || !state_.contains(split)) return {};
  try {
    return SplitProgress::from_json(state_.at(split));
  } catch (const json::exception& e) {
    fail("'{}' is damaged ({}): remove the folder '{}' to start over", (dir_ / kStateFile).string(),
         e.what(), dir_.string());
  }
}

void PrepareStaging::save(const std::string& tokenizer_fp, const SplitProgress& train,
                          const SplitProgress& validation) {
  const json state = {{"key", key_},
                      {"tokenizer", tokenizer_fp},
                      {"train", train.to_json()},
                      {"validation", validation.to_json()}};
  write_file_atomic(dir_ / kStateFile, state.dump(1) + "\n");
}

void PrepareStaging::commit(const std::vector<std::string>& files) {
  std::error_code ec;
  // Extra files the previous data set listed (task files of `data synth`) go with it.
  std::vector<std::string> old_extra;
  try {
    const json old = json::parse(read_file_text(out_ / kMetaFile));
    for (const json& f : old.value("files", json::array())) {
      const std::string name = f.get<std::string>();
      if (!name.empty() && name.find("..") == std::string::npos && name[0] != '/') {
        old_extra.push_back(name);
      }
    }
  } catch (const std::exception&) {
    // No previous data set, or not one of ours: nothing more to remove.
  }
  fs::remove(out_ / kMetaFile, ec);
  for (const auto& name : old_extra) fs::remove_all(out_ / name, ec);
  for (const auto& entry : fs::directory_iterator(out_, ec)) {
    const std::string name = entry.path().filename().string();
    bool old_shard = false;
    for (const SplitName& s : kSplits) {
      old_shard = old_shard || (entry.path().extension() == ".tokens" &&
                                name.rfind(std::string(s.prefix) + "-", 0) == 0);
    }
    if (old_shard || name == kTokenizerFile) fs::remove(entry.path(), ec);
  }
  for (const auto& name : files) {
    fs::remove_all(out_ / name, ec);  // a folder of task files is replaced whole
    fs::rename(dir_ / name, out_ / name, ec);
    if (ec) fail("cannot move '{}' into '{}': {}", name, out_.string(), ec.message());
  }
  fs::rename(dir_ / kMetaFile, out_ / kMetaFile, ec);
  if (ec) fail("cannot move '{}' into '{}': {}", kMetaFile, out_.string(), ec.message());
  fsync_dir(out_);
  committed_ = true;
  if (lock_fd_ >= 0) {
    ::close(lock_fd_);
    lock_fd_ = -1;
  }
  fs::remove_all(dir_, ec);
}

}  // namespace difftx::data
