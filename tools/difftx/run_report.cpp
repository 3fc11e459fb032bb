// Reading run folders into report series (see run_report.h).
#include "run_report.h"

#include <fmt/format.h>

#include <cmath>
#include <ctime>
#include <map>

#include "difftx/core/error.h"
#include "difftx/train/metrics_log.h"

namespace difftx::cli {
namespace fs = std::filesystem;

report::RunSeries run_series(const fs::path& run_dir, const std::string& label) {
  const fs::path file = run_dir / "metrics.jsonl";
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    fail(
        "'{}' is not a run folder: it has no metrics.jsonl (give the output.dir of a training run)",
        run_dir.string());
  }
  const RunMetrics m = read_metrics(file);
  if (m.run.is_null()) fail("{}: no \"run\" record (not written by difftx train?)", file.string());
  report::RunSeries r;
  r.label = label;
  r.params = m.run.value("parameters", std::int64_t(0));
  const nlohmann::json config = m.run.value("config", nlohmann::json::object());
  if (config.contains("model")) r.attention = config["model"].value("attention", "");
  for (const auto& t : m.train) {
    r.train_loss.emplace_back(t.step, t.loss);
    r.learning_rate.emplace_back(t.step, t.lr);
    r.grad_norm.emplace_back(t.step, t.grad_norm);
    r.throughput.emplace_back(t.step, t.tokens_per_s);
  }
  for (const auto& e : m.evals) r.val_loss.emplace_back(e.step, e.val_loss);
  for (const auto& l : m.lambdas) {
    if (r.lambda_per_layer.size() < l.per_layer.size())
      r.lambda_per_layer.resize(l.per_layer.size());
    for (std::size_t i = 0; i < l.per_layer.size(); ++i)
      r.lambda_per_layer[i].emplace_back(l.step, l.per_layer[i]);
  }
  r.tokens_per_second = m.tokens_per_second.value_or(NAN);
  r.final_val_loss = m.final_val_loss.value_or(NAN);
  // The configuration without what only names or seeds a run.
  nlohmann::json key = config;
  if (key.contains("train")) key["train"].erase("seed");
  if (key.contains("data")) key["data"].erase("seed");
  key.erase("output");
  r.configuration = key.dump();
  const auto seed_of = [&](const char* section) -> std::string {
    if (!config.contains(section) || !config[section].contains("seed")) return "?";
    return config[section]["seed"].dump();
  };
  r.seed = fmt::format("init {}, data {}", seed_of("train"), seed_of("data"));
  return r;
}

std::vector<std::string> run_labels(const std::vector<fs::path>& run_dirs) {
  std::map<std::string, int> count;
  std::vector<std::string> names;
  for (const auto& d : run_dirs) {
    fs::path p = d.lexically_normal();
    if (p.filename().empty()) p = p.parent_path();
    names.push_back(p.filename().string());
    ++count[names.back()];
  }
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (count[names[i]] > 1 || names[i].empty()) names[i] = run_dirs[i].lexically_normal().string();
  }
  return names;
}

std::string utc_date() {
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char date[64];
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", &utc);
  return date;
}

}  // namespace difftx::cli
