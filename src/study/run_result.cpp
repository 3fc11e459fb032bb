// study_result.json of a run folder (see run_result.h).
#include "difftx/study/run_result.h"

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"

namespace difftx::study {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The config without where its data and its folder are: a study moved or resumed from another
// working folder still recognises its runs.
json without_locations(json config) {
  if (config.contains("data") && config["data"].is_object()) config["data"].erase("path");
  if (config.contains("output") && config["output"].is_object()) config["output"].erase("dir");
  return config;
}

}  // namespace

json RunResult::to_json() const {
  json curve_json = json::array();
  for (const CurvePoint& p : curve) {
    curve_json.push_back({{"step", p.step}, {"tokens", p.tokens}, {"val_loss", p.val_loss}});
  }
  return {{"id", id},
          {"parameters", parameters},
          {"steps", steps},
          {"tokens", tokens},
          {"metrics", metrics},
          {"curve", curve_json},
          {"final_lambdas", final_lambdas},
          {"evaluations", evaluations},
          {"config", config},
          {"timing",
           {{"train_seconds", timing.train_seconds},
            {"eval_seconds", timing.eval_seconds},
            {"tokens_per_second", timing.tokens_per_second}}}};
}

RunResult RunResult::from_json(const json& j, const std::string& source) {
  try {
    RunResult r;
    r.id = j.at("id").get<std::string>();
    r.parameters = j.at("parameters").get<std::int64_t>();
    r.steps = j.at("steps").get<int>();
    r.tokens = j.at("tokens").get<double>();
    r.metrics = j.at("metrics").get<std::map<std::string, double>>();
    for (const json& p : j.at("curve")) {
      r.curve.push_back(
          {p.at("step").get<int>(), p.at("tokens").get<double>(), p.at("val_loss").get<double>()});
    }
    r.final_lambdas = j.at("final_lambdas").get<std::vector<double>>();
    r.config = j.at("config");
    r.evaluations = j.value("evaluations", json::object());
    const json& t = j.at("timing");
    r.timing = {t.at("train_seconds").get<double>(), t.at("eval_seconds").get<double>(),
                t.at("tokens_per_second").get<double>()};
    return r;
  } catch (const json::exception& e) {
    fail(
        "{}: not a study run result ({}): delete it and resume the study to measure the run "
        "again",
        source, e.what());
  }
}

void write_run_result(const fs::path& run_dir, const RunResult& result) {
  write_file_atomic(run_dir / kRunResultFile, result.to_json().dump(2) + "\n");
}

std::optional<RunResult> read_run_result(const fs::path& run_dir, const json& config) {
  const fs::path file = run_dir / kRunResultFile;
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::nullopt;
  json j;
  try {
    j = json::parse(read_file_text(file));
  } catch (const json::parse_error& e) {
    fail("{}: not valid JSON ({}): delete it and resume the study to measure the run again",
         file.string(), e.what());
  }
  RunResult r = RunResult::from_json(j, file.string());
  if (without_locations(r.config) != without_locations(config)) return std::nullopt;
  return r;
}

}  // namespace difftx::study
