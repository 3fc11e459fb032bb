// Run-folder layout, atomic checkpoint saves, keep-last-K pruning and the --checkpoint
// resolver (see checkpoint_store.h).
#include "difftx/runtime/checkpoint_store.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/runtime/interrupt.h"

namespace difftx {
namespace fs = std::filesystem;

namespace {

constexpr const char* kPartialSuffix = ".partial";
constexpr const char* kTrashPrefix = ".overwritten-";

// The step of a complete checkpoint folder name "step_NNNNNNN", or nullopt.
std::optional<std::int64_t> step_of(const std::string& name) {
  static const std::regex pattern("step_(\\d{7,18})");
  std::smatch m;
  if (!std::regex_match(name, m, pattern)) return std::nullopt;
  return std::stoll(m[1].str());
}

bool path_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

bool is_folder(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

bool complete_checkpoint(const fs::path& dir) {
  return path_exists(dir / "model.safetensors") && path_exists(dir / "config.json");
}

// What config.json of a folder says it is.
enum class ConfigKind { none, difftx, hugging_face, other };

ConfigKind config_kind(const fs::path& dir) {
  const fs::path file = dir / "config.json";
  if (!path_exists(file)) return ConfigKind::none;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file_text(file));
  } catch (const std::exception&) {
    return ConfigKind::other;
  }
  if (!j.is_object()) return ConfigKind::other;
  if (j.contains("model")) return ConfigKind::difftx;
  if (j.contains("model_type") || j.contains("architectures")) return ConfigKind::hugging_face;
  return ConfigKind::other;
}

bool is_run_folder(const fs::path& dir) {
  return is_folder(dir / "checkpoints") || path_exists(dir / "metrics.jsonl");
}

void remove_quietly(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
}

}  // namespace

CheckpointStore::CheckpointStore(fs::path run_dir) : run_dir_(std::move(run_dir)) {}

fs::path CheckpointStore::folder_for(std::int64_t step) const {
  return checkpoints_dir() / fmt::format("step_{:07d}", step);
}

std::vector<CheckpointEntry> CheckpointStore::list() const {
  std::vector<CheckpointEntry> entries;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(checkpoints_dir(), ec)) {
    std::error_code ec2;
    if (!e.is_directory(ec2)) continue;
    auto step = step_of(e.path().filename().string());
    if (step && complete_checkpoint(e.path())) entries.push_back({*step, e.path()});
  }
  std::sort(entries.begin(), entries.end(),
            [](const CheckpointEntry& a, const CheckpointEntry& b) { return a.step < b.step; });
  return entries;
}

std::optional<CheckpointEntry> CheckpointStore::latest() const {
  auto entries = list();
  if (entries.empty()) return std::nullopt;
  return entries.back();
}

bool CheckpointStore::holds_run() const {
  if (path_exists(metrics_file())) return true;
  std::error_code ec;
  return is_folder(checkpoints_dir()) && !fs::is_empty(checkpoints_dir(), ec);
}

void CheckpointStore::prepare() const {
  ensure_writable_directory(run_dir_);
  ensure_writable_directory(checkpoints_dir());
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(checkpoints_dir(), ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() > 1 && name[0] == '.' && name.ends_with(kPartialSuffix))
      remove_quietly(e.path());
  }
  for (const auto& e : fs::directory_iterator(run_dir_, ec)) {
    if (e.path().filename().string().starts_with(kTrashPrefix)) remove_quietly(e.path());
  }
}

void CheckpointStore::clear() const {
  if (!holds_run()) return;
  const fs::path trash =
      run_dir_ / fmt::format("{}{}-{:08x}", kTrashPrefix, ::getpid(), std::random_device{}());
  std::error_code ec;
  fs::create_directory(trash, ec);
  if (ec) fail("cannot clear run folder '{}': {}", run_dir_.string(), ec.message());
  for (const fs::path& item : {metrics_file(), checkpoints_dir()}) {
    if (!path_exists(item)) continue;
    fs::rename(item, trash / item.filename(), ec);
    if (ec) {
      fail("cannot clear run folder '{}': moving '{}' aside failed: {}", run_dir_.string(),
           item.string(), ec.message());
    }
  }
  fs::remove_all(trash, ec);
  if (ec) {
    fail("cannot delete the old run's files in '{}': {} (remove the folder by hand)",
         trash.string(), ec.message());
  }
}

fs::path CheckpointStore::save(std::int64_t step, const ContentWriter& write) const {
  DIFFTX_CHECK(step >= 0, "internal: checkpoint step {} is negative", step);
  const fs::path final_dir = folder_for(step);
  const fs::path partial = checkpoints_dir() / fmt::format(".step_{:07d}{}", step, kPartialSuffix);
  remove_quietly(partial);
  try {
    {
      PartialFolderGuard guard(partial);
      ensure_writable_directory(partial);
      write(partial);
      remove_quietly(final_dir);
      fs::rename(partial, final_dir);
    }
  } catch (const Error& e) {
    remove_quietly(partial);
    fail("checkpoint at step {} failed: {} (earlier checkpoints are intact under {})", step,
         e.what(), checkpoints_dir().string());
  } catch (const fs::filesystem_error& e) {
    remove_quietly(partial);
    fail("checkpoint at step {} failed: {} (earlier checkpoints are intact under {})", step,
         e.what(), checkpoints_dir().string());
  }
  return final_dir;
}

void CheckpointStore::prune(int keep_last, std::int64_t protect_step) const {
  DIFFTX_CHECK(keep_last >= 1, "internal: keep_last {} < 1", keep_last);
  auto entries = list();  // ascending step
  std::size_t excess = entries.size() > std::size_t(keep_last) ? entries.size() - keep_last : 0;
  for (const auto& e : entries) {
    if (excess == 0) break;
    if (e.step == protect_step) continue;
    remove_quietly(e.dir);
    --excess;
  }
}

fs::path resolve_checkpoint(const fs::path& path, std::string_view option) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("{} '{}': no such folder", option, path.string());
  if (!fs::is_directory(path, ec)) {
    fail(
        "{} '{}' is a file: give a checkpoint folder (model.safetensors and config.json) or a "
        "run folder (its newest checkpoint is used)",
        option, path.string());
  }
  const ConfigKind kind = config_kind(path);
  if (kind == ConfigKind::hugging_face) {
    fail(
        "{} '{}': this is a Hugging Face folder: import it first with `difftx import hf --in {} "
        "--out DIR`, then pass DIR",
        option, path.string(), path.string());
  }
  // A checkpoint folder (load_model_checkpoint reports what may be wrong with it)...
  if (path_exists(path / "model.safetensors")) return path;
  // ...or a run folder, whose newest complete checkpoint is meant.
  if (is_run_folder(path)) {
    auto latest = CheckpointStore(path).latest();
    if (!latest) {
      fail(
          "{} '{}' is a run folder without a complete checkpoint yet: train into it first, or "
          "give a checkpoint folder",
          option, path.string());
    }
    return latest->dir;
  }
  if (kind != ConfigKind::none) return path;  // config.json without weights: let the loader say so
  fail(
      "{} '{}' is neither a difftx checkpoint folder (model.safetensors and config.json) nor a "
      "run folder (checkpoints/step_N inside)",
      option, path.string());
}

void refuse_export_into_run_folder(const fs::path& out, std::string_view option,
                                   std::string_view what) {
  if (!is_folder(out)) return;
  if (is_run_folder(out)) {
    fail(
        "{} '{}' is a training run folder: writing {} into it would make it unreadable as a run; "
        "choose another folder",
        option, out.string(), what);
  }
  if (config_kind(out) == ConfigKind::difftx) {
    fail(
        "{} '{}' is a difftx checkpoint folder: {} would replace its config.json and make it "
        "unreadable; choose another folder",
        option, out.string(), what);
  }
}

void refuse_import_into_run_folder(const fs::path& out, std::string_view option) {
  if (!is_folder(out)) return;
  if (is_run_folder(out)) {
    fail(
        "{} '{}' is a training run folder: an imported checkpoint would make it unreadable as a "
        "run; choose another folder",
        option, out.string());
  }
  if (path_exists(out / "train_state.safetensors")) {
    fail(
        "{} '{}' is a checkpoint of a training run (it has train_state.safetensors): importing "
        "over it would mix two models; choose another folder",
        option, out.string());
  }
}

}  // namespace difftx
