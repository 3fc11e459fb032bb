// `difftx report RUN...` and `difftx compare` on real runs: LR, grad-norm and throughput
// panels, lambda from step 0, the seed caveat (one seed) and spread (several seeds), and a
// short compare (--steps below eval_every) that still draws curves with an honest legend.
#include <gtest/gtest.h>

#include <regex>

#include "difftx/core/atomic_file.h"
#include "train/train_test_util.h"

namespace difftx::testing {
namespace {

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

// The `d` attribute of the path with data-series="<id>", or "".
std::string path_d(const std::string& html, const std::string& id) {
  std::smatch m;
  return std::regex_search(html, m, std::regex("<path data-series=\"" + id + "\" d=\"([^\"]*)\""))
             ? m[1].str()
             : "";
}

class ReportCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("difftx_report_cli_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    // DIFF V1 with two seeds, and its matched baseline with one.
    for (int seed : {1, 2}) {
      auto j = tiny_run_config(dir_ / ("diff-s" + std::to_string(seed)), 6);
      j["train"]["seed"] = seed;
      j["data"]["seed"] = seed;
      train(j, "diff" + std::to_string(seed));
    }
    auto j = tiny_run_config(dir_ / "base-s1", 6);
    j["train"]["seed"] = 1;
    j["data"]["seed"] = 1;
    j["model"]["attention"] = "softmax";
    j["model"]["n_heads"] = 4;
    j["model"]["n_kv_heads"] = 2;
    j["model"]["head_dim"] = 8;
    train(j, "base");
  }
  static void train(const nlohmann::json& j, const std::string& name) {
    auto cfg = write_json(dir_ / (name + ".json"), j);
    auto r = run_command(cli() + " train --quiet --config " + cfg.string());
    ASSERT_EQ(r.status, 0) << r.output;
  }
  static std::string report(const std::string& runs, const std::string& name) {
    const fs::path out = dir_ / name;
    auto r = run_command(cli() + " report " + runs + " --out " + out.string());
    EXPECT_EQ(r.status, 0) << r.output;
    return fs::exists(out) ? read_file_text(out) : "";
  }
  static inline fs::path dir_;
};

TEST_F(ReportCli, PanelsAndLambdaFromStepZero) {
  const std::string html =
      report((dir_ / "diff-s1").string() + " " + (dir_ / "base-s1").string(), "two.html");
  for (const char* id :
       {"loss-chart", "lr-chart", "grad-norm-chart", "throughput-chart", "lambda-chart-0"}) {
    EXPECT_NE(html.find(id), std::string::npos) << id;
  }
  for (const char* run : {"diff-s1", "base-s1"}) {
    for (const char* suffix : {" lr", " grad norm", " tokens/s", " train", " val"}) {
      EXPECT_FALSE(path_d(html, std::string(run) + suffix).empty()) << run << suffix;
    }
  }
  // lambda of layer 0 starts at step 0 (x = the plot's left edge) and has 1 + 2 evaluations.
  const std::string d = path_d(html, "diff-s1 lambda layer 0");
  ASSERT_FALSE(d.empty());
  EXPECT_EQ(count_of(d, "L"), 2u) << d;
  EXPECT_EQ(d.rfind("M72.0 ", 0), 0u) << d;
  EXPECT_EQ(html.find("base-s1 lambda"), std::string::npos);
  EXPECT_NE(html.find("<meta name=\"generator\" content=\"difftx report\">"), std::string::npos);
}

TEST_F(ReportCli, OneSeedGetsACaveatSeveralSeedsASpread) {
  std::string html =
      report((dir_ / "diff-s1").string() + " " + (dir_ / "base-s1").string(), "one-seed.html");
  EXPECT_NE(html.find("id=\"seed-caveat\""), std::string::npos);
  EXPECT_NE(html.find("diff-s1, base-s1 were trained with a single seed"), std::string::npos);

  html = report((dir_ / "diff-s1").string() + " " + (dir_ / "diff-s2").string() + " " +
                    (dir_ / "base-s1").string(),
                "seeds.html");
  EXPECT_NE(html.find("Same configuration, 2 seeds (diff-s1, diff-s2)"), std::string::npos);
  EXPECT_NE(html.find("base-s1 was trained with a single seed"), std::string::npos);
  EXPECT_NE(html.find("seed: init 2, data 2"), std::string::npos);

  html = report((dir_ / "diff-s1").string() + " " + (dir_ / "diff-s2").string(), "same.html");
  EXPECT_EQ(html.find("id=\"seed-caveat\""), std::string::npos);  // no comparison of configurations
}

TEST_F(ReportCli, NotARunFolderIsAClearError) {
  auto r = run_command(cli() + " report " + dir_.string() + " --out " + (dir_ / "x.html").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("has no metrics.jsonl"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "x.html"));
}

TEST_F(ReportCli, ShortCompareStillDrawsCurvesWithAnHonestSchedule) {
  auto j = tiny_run_config(dir_ / "cmp-base", 600);
  j["train"]["eval_every"] = 100;
  j["schedule"] = {{"lr", 2e-3}, {"min_lr", 2e-4}, {"warmup_steps", 50}};
  auto cfg = write_json(dir_ / "cmp.json", j);
  auto r = run_command(cli() + " compare --quiet --config " + cfg.string() + " --steps 20 --out " +
                       (dir_ / "cmp").string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("warmup_steps 50 would make the whole run warmup; scaled to 2"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("evaluating every 2 steps instead"), std::string::npos) << r.output;
  const std::string html = read_file_text(dir_ / "cmp/report.html");
  // Ten evaluations: a curve (9 segments), not a dot.
  EXPECT_EQ(count_of(path_d(html, "DIFF V1 val"), "L"), 9u) << path_d(html, "DIFF V1 val");
  EXPECT_NE(html.find("lr 0.002 after 2 warmup steps, cosine decay to 0.0002 at step 20"),
            std::string::npos);
  EXPECT_EQ(html.find("moving average of 1"), std::string::npos);
  EXPECT_NE(html.find("not smoothed"), std::string::npos);
  EXPECT_NE(html.find("id=\"seed-caveat\""), std::string::npos);
  // The folder is a comparison now; a second compare into it is refused without --overwrite.
  r = run_command(cli() + " compare --quiet --config " + cfg.string() + " --steps 4 --out " +
                  (dir_ / "cmp").string());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--overwrite"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace difftx::testing
