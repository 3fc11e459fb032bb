// `difftx report RUN...`: one self-contained HTML report drawn from any number of existing run
// folders (their metrics.jsonl): loss, learning rate, gradient norm, throughput, lambda per
// layer, and the seed caveat.
#include <fmt/core.h>

#include "command_registry.h"
#include "difftx/report/html_report.h"
#include "run_report.h"

namespace difftx::cli {
namespace {

struct ReportArgs {
  std::vector<std::string> runs;
  std::string out = "report.html";
  std::string title;
};

const CommandRegistration reg{
    55, [](CLI::App& app) {
      auto a = std::make_shared<ReportArgs>();
      auto* cmd = app.add_subcommand(
          "report", "Draw one HTML report from existing run folders (their metrics.jsonl)");
      cmd->add_option("runs", a->runs, "Run folders (the output.dir of training runs); one or more")
          ->required()
          ->type_name("RUN");
      cmd->add_option("--out", a->out, "HTML file to write")
          ->capture_default_str()
          ->type_name("FILE");
      cmd->add_option("--title", a->title, "Page title (default: the run names)");
      cmd->callback([a] {
        std::vector<std::filesystem::path> dirs(a->runs.begin(), a->runs.end());
        const std::vector<std::string> labels = run_labels(dirs);
        report::CompareReport rep;
        rep.generator = "difftx report";
        for (std::size_t i = 0; i < dirs.size(); ++i)
          rep.runs.push_back(run_series(dirs[i], labels[i]));
        std::string names;
        for (const auto& l : labels) names += (names.empty() ? "" : ", ") + l;
        rep.title = a->title.empty() ? "difftx report: " + names : a->title;
        std::string where;
        for (const auto& d : dirs) where += (where.empty() ? "" : " | ") + d.string();
        rep.subtitle = fmt::format("runs {}\ngenerated {}", where, utc_date());
        report::write_compare_report(a->out, rep);
        fmt::print("report: {} ({} run{})\n", a->out, dirs.size(), dirs.size() == 1 ? "" : "s");
      });
    }};

}  // namespace
}  // namespace difftx::cli
