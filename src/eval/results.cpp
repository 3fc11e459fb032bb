// Writing, reading and finding results.json files (schema in results.h and docs/eval.md).
#include "difftx/eval/results.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <fstream>
#include <iterator>
#include <string_view>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"

namespace difftx::eval {
namespace fs = std::filesystem;

const std::vector<std::string>& task_names() {
  static const std::vector<std::string> names = {"ppl",    "outliers", "quant-logits",
                                                 "needle", "icl",      "attention-map"};
  return names;
}

nlohmann::json make_results(const RunInfo& info, const nlohmann::json& options,
                            const nlohmann::json& data, const nlohmann::json& models) {
  nlohmann::json j;
  j["schema"] = kResultsSchema;
  j["version"] = kResultsVersion;
  j["task"] = info.task;
  j["command"] = info.command;
  j["created"] = utc_timestamp();
  j["seed"] = info.seed;
  j["device"] = info.device;
  j["backend"] = info.backend;
  j["wall_seconds"] = info.wall_seconds;
  j["options"] = options;
  j["data"] = data;
  j["models"] = models;
  return j;
}

fs::path write_results(const fs::path& dir, const nlohmann::json& results) {
  ensure_writable_directory(dir);
  const fs::path path = dir / kResultsFile;
  write_file_atomic(path, results.dump(1) + "\n");
  return path;
}

nlohmann::json read_results(const fs::path& file) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file_text(file));
  } catch (const nlohmann::json::parse_error& e) {
    fail("{}: not valid JSON ({}); rerun the eval task that wrote it", file.string(), e.what());
  }
  auto need = [&](const char* key, nlohmann::json::value_t type, const char* what) {
    if (!j.is_object() || !j.contains(key) || j.at(key).type() != type) {
      fail("{}: field \"{}\" is missing or not {} (is this a difftx eval results file?)",
           file.string(), key, what);
    }
  };
  need("schema", nlohmann::json::value_t::string, "a string");
  if (j["schema"] != kResultsSchema) {
    fail("{}: schema is \"{}\", expected \"{}\"", file.string(), j["schema"].get<std::string>(),
         kResultsSchema);
  }
  if (!j.contains("version") || !j["version"].is_number_integer() ||
      j["version"] != kResultsVersion) {
    fail("{}: results version {} is not the supported version {}; rerun the task with this difftx",
         file.string(), j.value("version", nlohmann::json()).dump(), kResultsVersion);
  }
  need("task", nlohmann::json::value_t::string, "a string");
  const std::string task = j["task"];
  const auto& names = task_names();
  if (std::find(names.begin(), names.end(), task) == names.end()) {
    fail("{}: unknown task \"{}\"", file.string(), task);
  }
  need("command", nlohmann::json::value_t::string, "a string");
  need("options", nlohmann::json::value_t::object, "an object");
  need("models", nlohmann::json::value_t::array, "an array");
  for (std::size_t i = 0; i < j["models"].size(); ++i) {
    const auto& m = j["models"][i];
    if (!m.is_object() || !m.contains("label") || !m["label"].is_string() ||
        !m.contains("results") || !m["results"].is_object()) {
      fail("{}: models[{}] needs a string \"label\" and an object \"results\"", file.string(), i);
    }
  }
  return j;
}

std::vector<fs::path> find_results(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("'{}' is not a folder of eval results", dir.string());
  std::vector<fs::path> out;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file() && it->path().filename() == kResultsFile) out.push_back(it->path());
  }
  if (ec) fail("cannot list '{}': {}", dir.string(), ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::string utc_timestamp() {
  std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return buf;
}

std::string shell_command_line(int argc, const char* const* argv) {
  std::string out;
  for (int i = 0; i < argc; ++i) {
    std::string w = argv[i];
    if (i == 0) {
      const auto slash = w.rfind('/');
      if (slash != std::string::npos) w = w.substr(slash + 1);  // "difftx", not its build path
    }
    const bool plain = !w.empty() && std::all_of(w.begin(), w.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) ||
             std::string_view("-_./=,:+@%").find(c) != std::string_view::npos;
    });
    if (!out.empty()) out += ' ';
    if (plain) {
      out += w;
    } else {
      out += '\'';
      for (char c : w) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
  }
  return out;
}

std::string current_command_line(const std::string& fallback) {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (raw.empty()) return fallback;
  std::vector<std::string> words;  // NUL-terminated arguments
  std::string cur;
  for (char c : raw) {
    if (c == '\0') {
      words.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) words.push_back(cur);
  std::vector<const char*> argv;
  for (const auto& w : words) argv.push_back(w.c_str());
  return argv.empty() ? fallback : shell_command_line(int(argv.size()), argv.data());
}

}  // namespace difftx::eval
