// Writing and reading metrics.jsonl (see metrics_log.h).
#include "difftx/train/metrics_log.h"

#include <fmt/format.h>

#include <chrono>
#include <ctime>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"

namespace difftx {
namespace fs = std::filesystem;
using nlohmann::json;

std::string utc_timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:03d}Z", text, static_cast<int>(millis));
}

MetricsLog::MetricsLog(const fs::path& file, double elapsed_before)
    : file_(file), elapsed_before_(elapsed_before) {
  out_.open(file, std::ios::app);
  if (!out_) fail("cannot append to metrics file '{}'", file.string());
}

MetricsLog MetricsLog::start(const fs::path& file) {
  write_file_atomic(file, "");
  return MetricsLog(file, 0);
}

MetricsLog MetricsLog::resume(const fs::path& file, int step) {
  std::string kept;
  double elapsed = 0;
  std::error_code ec;
  if (fs::exists(file, ec)) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      json j;
      try {
        j = json::parse(line);
      } catch (const json::exception&) {
        continue;  // a line torn by a crash while it was written
      }
      if (!j.is_object() || j.value("step", 0) > step) continue;
      if (j.value("type", "") == "train") elapsed = j.value("elapsed_s", elapsed);
      kept += line + "\n";
    }
  }
  write_file_atomic(file, kept);
  return MetricsLog(file, elapsed);
}

void MetricsLog::write(json record) {
  record["time"] = utc_timestamp();
  out_ << record.dump() << "\n";
  out_.flush();
  if (!out_) fail("cannot write to metrics file '{}' (is the disk full?)", file_.string());
}

RunMetrics read_metrics(const fs::path& file) {
  std::ifstream in(file);
  if (!in) fail("cannot read metrics file '{}'", file.string());
  RunMetrics m;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    try {
      const json j = json::parse(line);
      const std::string type = j.at("type").get<std::string>();
      const int step = j.at("step").get<int>();
      if (type == "run") {
        m.run = j;
      } else if (type == "resume") {
        ++m.resumes;
      } else if (type == "train") {
        TrainRecord t;
        t.step = step;
        t.loss = j.at("loss").get<double>();
        t.lr = j.at("lr").get<double>();
        t.grad_norm = j.at("grad_norm").get<double>();
        t.tokens_per_s = j.at("tokens_per_s").get<double>();
        t.elapsed_s = j.value("elapsed_s", 0.0);
        t.tokens = j.value("tokens", 0.0);
        if (j.contains("mfu") && j.at("mfu").is_number()) t.mfu = j.at("mfu").get<double>();
        m.train.push_back(t);
      } else if (type == "eval") {
        m.evals.push_back({step, j.at("val_loss").get<double>()});
        m.final_val_loss = m.evals.back().val_loss;
        if (j.contains("lambda"))
          m.lambdas.push_back({step, j.at("lambda").get<std::vector<double>>()});
      } else if (type == "lambda") {
        m.lambdas.push_back({step, j.at("lambda").get<std::vector<double>>()});
      } else if (type == "summary") {
        if (j.contains("tokens_per_s") && j.at("tokens_per_s").is_number()) {
          m.tokens_per_second = j.at("tokens_per_s").get<double>();
        }
      }
    } catch (const json::exception& e) {
      fail("{}:{}: not a metrics record: {}", file.string(), number, e.what());
    }
  }
  return m;
}

}  // namespace difftx
