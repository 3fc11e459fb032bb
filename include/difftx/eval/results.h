// results.json: what one `difftx eval TASK` run measured, for every model it compared. The schema
// (docs/eval.md) is versioned; the report reads these files back, validating each field.
//
//   {"schema": "difftx-eval-results", "version": 1, "task": "ppl", "command": "difftx eval ...",
//    "created": "2026-11-30T09:00:00Z", "seed": 1, "device": "cpu", "backend": "cpu-f32",
//    "wall_seconds": 12.3, "options": {...}, "data": {...},
//    "models": [{"label", "checkpoint", "attention", "parameters", "step", "seconds",
//                "results": {...task-specific...}}, ...]}
//
// Everything except "created", "wall_seconds" and each model's "seconds" is a deterministic
// function of the inputs and the seed.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace difftx::eval {

inline constexpr const char* kResultsSchema = "difftx-eval-results";
inline constexpr int kResultsVersion = 1;
inline constexpr const char* kResultsFile = "results.json";

// The tasks, in report order.
const std::vector<std::string>& task_names();

struct RunInfo {
  std::string task;
  std::string command;  // the command line, shell-quoted
  std::uint64_t seed = 0;
  std::string device;   // cpu | cuda
  std::string backend;  // Backend::name()
  double wall_seconds = 0;
};

// The whole document; `models` entries must each hold "label" and "results".
nlohmann::json make_results(const RunInfo& info, const nlohmann::json& options,
                            const nlohmann::json& data, const nlohmann::json& models);

// Writes <dir>/results.json atomically (creating dir); returns its path.
std::filesystem::path write_results(const std::filesystem::path& dir,
                                    const nlohmann::json& results);

// Reads and checks schema, version, task and the model entries; throws difftx::Error naming the
// file and the field.
nlohmann::json read_results(const std::filesystem::path& file);

// Every results.json under dir (itself included), in path order.
std::vector<std::filesystem::path> find_results(const std::filesystem::path& dir);

// The current UTC time as 2026-11-30T09:00:00Z.
std::string utc_timestamp();

// argv joined with single quotes where a word needs them (the program as its file name).
std::string shell_command_line(int argc, const char* const* argv);
// This process's command line (Linux /proc/self/cmdline), as shell_command_line; `fallback`
// where it cannot be read.
std::string current_command_line(const std::string& fallback);

}  // namespace difftx::eval
