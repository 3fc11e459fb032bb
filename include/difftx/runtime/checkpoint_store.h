// Run folders and checkpoint folders: the one place that knows their layout. Every command
// that reads or writes checkpoints goes through here (train, generate, export/import hf, and
// later eval and serve), so `--checkpoint` means the same thing everywhere.
//
// A run folder (a run config's output.dir) belongs to one run:
//   metrics.jsonl                          the run's log, one JSON object per line
//   checkpoints/step_NNNNNNN/              complete checkpoints (NNNNNNN: optimizer steps done,
//                                          at least 7 digits); ordered by that number
//   checkpoints/.step_NNNNNNN.partial/     a checkpoint being written; never read, removed
//                                          when the folder is next prepared for training
// A checkpoint folder holds model.safetensors and config.json (a run config whose "model"
// object is the architecture), usually tokenizer.model, and train_state.safetensors when a
// training run wrote it (the content is written by callbacks: model/checkpoint.h and
// train/train_state.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

namespace difftx {

struct CheckpointEntry {
  std::int64_t step = 0;
  std::filesystem::path dir;
};

class CheckpointStore {
 public:
  explicit CheckpointStore(std::filesystem::path run_dir);

  const std::filesystem::path& run_dir() const { return run_dir_; }
  std::filesystem::path checkpoints_dir() const { return run_dir_ / "checkpoints"; }
  std::filesystem::path metrics_file() const { return run_dir_ / "metrics.jsonl"; }
  // <run>/checkpoints/step_NNNNNNN (whether or not it exists).
  std::filesystem::path folder_for(std::int64_t step) const;

  // Complete checkpoints (model.safetensors and config.json present), by ascending step.
  std::vector<CheckpointEntry> list() const;
  std::optional<CheckpointEntry> latest() const;

  // Whether the folder already holds a run: a metrics.jsonl or anything under checkpoints/.
  bool holds_run() const;

  // Creates the run folder and checkpoints/ (throws a clear Error if that is impossible or
  // not writable) and removes leftovers of interrupted writes (.partial folders, and the
  // trash of an interrupted clear()).
  void prepare() const;

  // Removes the run's own content, checkpoints/ and metrics.jsonl (other files in the folder
  // are kept): both are first moved into one hidden trash folder, then deleted, so the run
  // folder never shows a mix of the old and a new run. Used by `train --overwrite`.
  void clear() const;

  // Writes checkpoint `step`: `write` fills the fresh folder it is given (.step_N.partial),
  // which is then renamed to step_N, replacing an older folder of the same step. A failure
  // (an Error, or a full disk) removes the partial folder, leaves every earlier checkpoint
  // intact and throws an Error naming the step. While `write` runs, a second Ctrl-C removes
  // the partial folder before the process exits (runtime/interrupt.h). Returns step_N.
  using ContentWriter = std::function<void(const std::filesystem::path& partial_dir)>;
  std::filesystem::path save(std::int64_t step, const ContentWriter& write) const;

  // Deletes complete checkpoints, oldest step first, until `keep_last` remain; the
  // checkpoint of `protect_step` (the one just written) is never deleted.
  void prune(int keep_last, std::int64_t protect_step) const;

 private:
  std::filesystem::path run_dir_;
};

// What a `--checkpoint` argument names, resolved the same way by every command: a checkpoint
// folder is returned as it is; a run folder gives its newest complete checkpoint. Errors
// (naming `option` and the path): a missing path, a file, a run folder with no complete
// checkpoint yet, a Hugging Face model folder ("import it first with `difftx import hf --in
// DIR --out DIR`"), and a folder that is neither.
std::filesystem::path resolve_checkpoint(const std::filesystem::path& path,
                                         std::string_view option = "--checkpoint");

// Refuses to write an exported model (`what`, e.g. "a Hugging Face export") into `out` when
// `out` is a run folder or a difftx checkpoint folder: the export's files would make it
// unreadable as what it is. Names `option` and says what to do.
void refuse_export_into_run_folder(const std::filesystem::path& out, std::string_view option,
                                   std::string_view what);

// Refuses to write a new checkpoint folder (an import) into `out` when `out` is a run folder
// or a checkpoint a training run wrote (train_state.safetensors inside).
void refuse_import_into_run_folder(const std::filesystem::path& out, std::string_view option);

}  // namespace difftx
