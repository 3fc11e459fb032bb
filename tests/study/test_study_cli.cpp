// `difftx study` end to end on the CI spec (configs/studies/ci-tiny.json): the whole study on the
// CPU (results.json, report.html, paired statistics, difficulty, scaling fit); a study killed
// with SIGKILL mid-run and resumed gives the same results as an uninterrupted one; a folder
// holding a study is refused without --resume and with another spec; --plan; bad specs end
// with one error line.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "train/train_test_util.h"

namespace difftx::testing {
namespace {
using nlohmann::json;

const fs::path kSpec = fs::path(DIFFTX_SOURCE_DIR) / "configs/studies/ci-tiny.json";

fs::path scratch(const std::string& name) {
  const fs::path p =
      fs::temp_directory_path() / ("difftx_study_" + std::to_string(::getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p.parent_path());
  return p;
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

// The results without what legitimately differs between two executions of the same study:
// wall times and where the study folder is.
json comparable(json j) {
  j.erase("timing");
  for (json& r : j["runs"]) r.erase("timing");
  for (json& d : j["datasets"]) d.erase("path");
  return j;
}

std::string study_command(const fs::path& out, const std::string& extra = "") {
  return cli() + " study --spec " + kSpec.string() + " --out " + out.string() + " --quiet" + extra;
}

// The uninterrupted study, run once per process and shared by the tests.
const fs::path& reference_study() {
  static const fs::path out = [] {
    const fs::path o = scratch("reference");
    const CommandResult r = run_command(study_command(o));
    if (r.status != 0) throw std::runtime_error("difftx study failed: " + r.output);
    return o;
  }();
  return out;
}

TEST(StudyCli, CiSpecEndToEnd) {
  const fs::path& out = reference_study();
  const json res = read_json(out / "results.json");
  EXPECT_EQ(res["schema"], "difftx-study-results");
  EXPECT_TRUE(res["complete"].get<bool>());
  ASSERT_EQ(res["runs"].size(), 8u);  // 1 data set x 2 sizes x 2 seeds x 2 arms
  for (const json& r : res["runs"]) {
    for (const char* m : {"val_loss", "test_loss", "val_accuracy", "test_accuracy"}) {
      ASSERT_TRUE(r["metrics"].contains(m)) << r["id"] << " " << m;
    }
    const double acc = r["metrics"]["val_accuracy"];
    EXPECT_GE(acc, 0.0);
    EXPECT_LE(acc, 1.0);
    EXPECT_EQ(r["curve"].size(), 3u);  // evaluations at steps 10, 20, 30
    EXPECT_TRUE(fs::exists(out / "runs" / r["id"].get<std::string>() / "study_result.json"));
  }
  // Paired differences: 2 sizes x 4 metrics, DIFF V1 against the Transformer, by hand.
  ASSERT_EQ(res["paired"].size(), 8u);
  for (const json& p : res["paired"]) {
    EXPECT_EQ(p["arm"], "DIFF V1");
    EXPECT_EQ(p["n"], 2);
    const std::string metric = p["metric"];
    double diff[2];
    int k = 0;
    for (int seed : {1, 2}) {
      double a = 0, b = 0;
      for (const json& r : res["runs"]) {
        if (r["size"] != p["size"] || r["seed"] != seed) continue;
        (r["arm"] == "DIFF V1" ? a : b) = r["metrics"][metric];
      }
      diff[k++] = a - b;
    }
    const double mean = (diff[0] + diff[1]) / 2, sd = std::fabs(diff[0] - diff[1]) / std::sqrt(2.0);
    EXPECT_NEAR(p["mean"].get<double>(), mean, 1e-12);
    if (sd > 0) {
      const double half = 12.706204736 * sd / std::sqrt(2.0);  // t_{0.975, 1}
      EXPECT_NEAR(p["ci_low"].get<double>(), mean - half, 1e-6);
      EXPECT_NEAR(p["ci_high"].get<double>(), mean + half, 1e-6);
    }
  }
  // Difficulty: 2 sizes x 2 arms x 2 splits, with the task's shapes.
  ASSERT_EQ(res["difficulty"].size(), 8u);
  for (const json& d : res["difficulty"]) {
    const bool test = d["split"] == "test";
    EXPECT_EQ(d["pairs"], test ? 8 : 4);
    EXPECT_EQ(d["seq_len"], test ? 64 : 32);
    EXPECT_DOUBLE_EQ(d["pairs_per_width"].get<double>(),
                     d["pairs"].get<double>() / d["d_model"].get<double>());
  }
  // The scaling fit ran (two sizes) and reports a ratio or says why not.
  ASSERT_TRUE(res["scaling"].is_array());
  ASSERT_EQ(res["scaling"].size(), 1u);
  const json& fit = res["scaling"][0];
  ASSERT_FALSE(fit.contains("error")) << fit.dump();
  ASSERT_EQ(fit["ratios"].size(), 1u);
  EXPECT_EQ(fit["ratios"][0]["by_seed"].size(), 2u);
  // The report: self-contained, with every section.
  std::ifstream html_in(out / "report.html");
  const std::string html((std::istreambuf_iterator<char>(html_in)), {});
  for (const char* part : {"id=\"paired-table\"", "id=\"curves\"", "id=\"difficulty\"",
                           "id=\"scaling\"", "id=\"runs-table\"", "<svg"}) {
    EXPECT_NE(html.find(part), std::string::npos) << part;
  }
  EXPECT_EQ(html.find("<script"), std::string::npos);
  // Nothing fetched from elsewhere (the SVG namespace URI is a name, not a fetch).
  for (const char* external : {"src=\"http", "href=\"http", "@import", "url(http"}) {
    EXPECT_EQ(html.find(external), std::string::npos) << external;
  }
}

TEST(StudyCli, KilledStudyResumesToTheSameResults) {
  const json reference = comparable(read_json(reference_study() / "results.json"));
  const fs::path out = scratch("killed");
  // Start the study, wait until the third run has its first checkpoint, then SIGKILL it: no
  // handler runs, so whatever was being written is left as it was.
  const std::string cli_path = cli(), spec = kSpec.string(), out_dir = out.string();
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const int null_fd = ::open("/dev/null", O_WRONLY);
    ::dup2(null_fd, 1);
    ::dup2(null_fd, 2);
    ::execl(cli_path.c_str(), cli_path.c_str(), "study", "--spec", spec.c_str(), "--out",
            out_dir.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const fs::path third = out / "runs/mqar-p4/d16/diff-v1/seed-2/checkpoints";
  bool seen = false;
  for (int i = 0; i < 6000 && !seen; ++i) {
    std::error_code ec;
    seen = fs::exists(third, ec) && !fs::is_empty(third, ec);
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(seen) << "the study never reached its third run";
  EXPECT_FALSE(fs::exists(out / "results.json")) << "killed before the end";

  const CommandResult again = run_command(study_command(out));
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.output.find("already holds study \"ci-tiny\": continue it with --resume"),
            std::string::npos)
      << again.output;

  const CommandResult resumed = run_command(study_command(out, " --resume"));
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_EQ(comparable(read_json(out / "results.json")), reference);
}

TEST(StudyCli, RefusesAnotherSpecOnResumeAndPlans) {
  // Another spec (a changed seed list) in the reference folder: refused, naming the spec.
  const fs::path spec = scratch("changed.json");
  json j = read_json(kSpec);
  j["seeds"] = {1, 3};
  std::ofstream(spec) << j.dump();
  const CommandResult r = run_command(cli() + " study --spec " + spec.string() + " --out " +
                                      reference_study().string() + " --resume --quiet");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("difftx: error: --resume: '"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("made from another spec"), std::string::npos) << r.output;

  const CommandResult plan = run_command(cli() + " study --spec " + kSpec.string() + " --plan");
  ASSERT_EQ(plan.status, 0) << plan.output;
  EXPECT_NE(plan.output.find("mqar-p4/d32/transformer/seed-2  softmax"), std::string::npos)
      << plan.output;
  EXPECT_NE(plan.output.find("study ci-tiny: 8 runs"), std::string::npos) << plan.output;
}

TEST(StudyCli, BadSpecsEndWithOneErrorLine) {
  struct Case {
    std::string name;
    std::string text;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"not-json.json", "{\"study\": ", "not valid JSON"},
      {"missing.json", R"({"study": "x"})", "missing required field 'expected_wall_time'"},
      {"bad-recipe.json",
       read_json(kSpec).dump().replace(read_json(kSpec).dump().find("\"pairs\":4"), 9,
                                       "\"pairs\":40"),
       "40 pairs do not fit a sequence of 32"},
      {"bad-option.json",
       read_json(kSpec).dump().replace(read_json(kSpec).dump().find("\"noise\""), 7, "\"nois\""),
       "unknown field 'nois'"},
  };
  for (const Case& c : cases) {
    const fs::path spec = scratch(c.name);
    std::ofstream(spec) << c.text;
    const fs::path out = scratch("out-" + c.name);
    const CommandResult r = run_command(cli() + " study --spec " + spec.string() + " --out " +
                                        out.string() + " --quiet");
    EXPECT_EQ(r.status, 1) << c.name << ": " << r.output;
    EXPECT_EQ(r.output.rfind("difftx: error: ", 0), 0u) << c.name << ": " << r.output;
    EXPECT_NE(r.output.find(c.expected), std::string::npos) << c.name << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << c.name << ": " << r.output;
    EXPECT_FALSE(fs::exists(out)) << c.name << ": nothing is written for a bad spec";
  }
  const CommandResult missing = run_command(cli() + " study --spec /nonexistent/spec.json");
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.output.find("difftx: error: "), std::string::npos) << missing.output;
}

}  // namespace
}  // namespace difftx::testing
