// Issue 16 defects of `difftx train`, each through the built CLI: a run folder belongs to one
// run (--overwrite, --resume, what generate picks), --stop-after without an evaluation, the
// resume log (one resume record, elapsed time that continues, no step logged twice), the
// vocabulary hints, `model match --out` accepted by train, and --set / --data overrides.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>

#include "difftx/core/atomic_file.h"
#include "train_test_util.h"

namespace difftx::testing {
namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("difftx_runfolder_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::vector<nlohmann::json> records(const fs::path& metrics) {
  std::ifstream in(metrics);
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::vector<std::string> folder_names(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string train(const fs::path& cfg, const std::string& args = "") {
  return cli() + " train --quiet --config " + cfg.string() + " " + args;
}

TEST(RunFolder, ASecondRunIsRefusedUnlessOverwriteStartsCleanly) {
  const fs::path a = fresh_dir("owner");
  auto cfg = write_json(a / "run.json", tiny_run_config(a / "out", 50));
  auto r = run_command(train(cfg, "--steps 6"));
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_EQ(folder_names(a / "out/checkpoints"),
            (std::vector<std::string>{"step_0000003", "step_0000006"}));

  r = run_command(train(cfg, "--steps 4"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("already holds a run"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--resume"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--overwrite"), std::string::npos) << r.output;
  EXPECT_EQ(folder_names(a / "out/checkpoints"),
            (std::vector<std::string>{"step_0000003", "step_0000006"}));

  std::ofstream(a / "out" / "my-notes.txt") << "kept";
  r = run_command(train(cfg, "--steps 4 --overwrite"));
  ASSERT_EQ(r.status, 0) << r.output;
  // Only the new run: its checkpoints (keep_last 2 by step), one run record, steps <= 4.
  EXPECT_EQ(folder_names(a / "out/checkpoints"),
            (std::vector<std::string>{"step_0000003", "step_0000004"}));
  EXPECT_TRUE(fs::exists(a / "out" / "my-notes.txt"));
  int runs = 0;
  for (const auto& j : records(a / "out/metrics.jsonl")) {
    runs += j["type"] == "run";
    EXPECT_LE(j["step"].get<int>(), 4) << j.dump();
  }
  EXPECT_EQ(runs, 1);
  // generate and --resume see the new run's newest checkpoint.
  auto g = run_command(cli() + " generate --checkpoint " + (a / "out").string() +
                       " --prompt the --max-tokens 2 --seed 1 --device cpu");
  EXPECT_EQ(g.status, 0) << g.output;
  r = run_command(train(cfg, "--steps 4 --resume"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("already complete (step 4 of train.steps 4)"), std::string::npos)
      << r.output;
  r = run_command(train(cfg, "--steps 6 --resume --overwrite"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("contradict"), std::string::npos) << r.output;
}

TEST(RunFolder, StopAfterWithoutAnEvaluationReportsNoValidationLoss) {
  const fs::path a = fresh_dir("noeval");
  auto j = tiny_run_config(a / "out", 8);
  j["train"]["eval_every"] = 5;
  auto cfg = write_json(a / "run.json", j);
  auto r = run_command(train(cfg, "--stop-after 2"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.find("0.0000"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("perplexity 1.00"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("no evaluation in this run yet"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--resume"), std::string::npos) << r.output;
  const auto recs = records(a / "out/metrics.jsonl");
  ASSERT_FALSE(recs.empty());
  EXPECT_EQ(recs.back()["type"], "summary");
  EXPECT_TRUE(recs.back()["final_val_loss"].is_null()) << recs.back().dump();
  for (const auto& rec : recs) EXPECT_NE(rec["type"], "eval") << rec.dump();
}

TEST(RunFolder, ResumeLogsOnceContinuesElapsedTimeAndCountsOnlyItsOwnSteps) {
  const fs::path a = fresh_dir("resume");
  auto cfg = write_json(a / "run.json", tiny_run_config(a / "out", 9));
  ASSERT_EQ(run_command(train(cfg, "--stop-after 4")).status, 0);
  // Progress as plain lines (not a terminal): the final line counts this process's steps.
  auto r = run_command(cli() + " train --resume --config " + cfg.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("train: 5 step in"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("trained 5 steps after resuming at step 4 (step 9 of 9)"),
            std::string::npos)
      << r.output;

  const auto recs = records(a / "out/metrics.jsonl");
  std::set<std::pair<std::string, int>> seen;
  int resumes = 0;
  double elapsed_at_4 = -1, elapsed_at_5 = -1;
  std::string version;
  for (const auto& j : recs) {
    const std::string type = j["type"];
    const int step = j["step"];
    EXPECT_TRUE(j.contains("time")) << j.dump();
    if (type == "train" || type == "eval" || type == "lambda") {
      EXPECT_TRUE(seen.insert({type, step}).second) << "logged twice: " << j.dump();
    }
    if (type == "run") version = j["difftx_version"];
    if (type == "resume") {
      ++resumes;
      EXPECT_EQ(step, 4);
      EXPECT_EQ(j["from"].get<std::string>().find("step_0000004"),
                j["from"].get<std::string>().size() - 12);
    }
    if (type == "train" && step == 4) elapsed_at_4 = j["elapsed_s"];
    if (type == "train" && step == 5) elapsed_at_5 = j["elapsed_s"];
    if (type == "train") {
      EXPECT_DOUBLE_EQ(j["tokens"].get<double>(), step * 2.0 * 4 * 16) << j.dump();
    }
  }
  EXPECT_EQ(resumes, 1);
  EXPECT_FALSE(version.empty());
  EXPECT_GT(elapsed_at_4, 0);
  EXPECT_GT(elapsed_at_5, elapsed_at_4);  // continues, does not restart at 0
  for (int step = 1; step <= 9; ++step) EXPECT_TRUE(seen.count({"train", step})) << step;
  EXPECT_TRUE(seen.count({"lambda", 0}));  // lambda per layer before the first step
}

TEST(RunFolder, VocabularyHintsAgreeAndFollowingThemWorks) {
  const fs::path a = fresh_dir("vocab");
  // No data yet: the hint names the model's vocabulary size.
  auto j = tiny_run_config(a / "out", 2);
  const fs::path data = a / "data-384";
  j["data"]["path"] = data.string();
  auto cfg = write_json(a / "run.json", j);
  auto r = run_command(train(cfg));
  EXPECT_EQ(r.status, 1) << r.output;
  const std::string hint = "difftx data prepare --vocab-size 384 --out " + data.string();
  EXPECT_NE(r.output.find(hint), std::string::npos) << r.output;
  // Following it (with this test's text as the corpus) makes the run work: no second hint.
  r = run_command(cli() + " data prepare --vocab-size 384 --out " + data.string() + " --input " +
                  (tiny_data_dir().parent_path() / "text").string() + " --progress none");
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_command(train(cfg));
  EXPECT_EQ(r.status, 0) << r.output;

  // Data of another vocabulary: both ways out are named and consistent.
  j = tiny_run_config(a / "out512", 2);
  j["model"]["vocab_size"] = 512;
  cfg = write_json(a / "run512.json", j);
  r = run_command(train(cfg));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("--vocab-size 512"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--set model.vocab_size=384"), std::string::npos) << r.output;
  r = run_command(train(cfg, "--set model.vocab_size=384"));
  EXPECT_EQ(r.status, 0) << r.output;
}

TEST(RunFolder, ModelMatchWritesARunConfigThatTrainAccepts) {
  const fs::path a = fresh_dir("match");
  auto cfg = write_json(a / "run.json", tiny_run_config(a / "out", 2));
  auto r = run_command(cli() + " model match --config " + cfg.string() + " --out " +
                       (a / "base.json").string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("wrote a run config"), std::string::npos) << r.output;
  r = run_command(train(a / "base.json"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(a / "out-baseline/checkpoints/step_0000002"));
  const auto recs = records(a / "out-baseline/metrics.jsonl");
  EXPECT_EQ(recs.front()["config"]["model"]["attention"], "softmax");

  // A bare model object in, a bare model object out; train says what it is.
  write_json(a / "model.json", tiny_run_config(a / "x", 2)["model"]);
  r = run_command(cli() + " model match --config " + (a / "model.json").string() + " --out " +
                  (a / "base-model.json").string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("wrote a model config"), std::string::npos) << r.output;
  r = run_command(train(a / "base-model.json"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("is a model config"), std::string::npos) << r.output;
}

TEST(RunFolder, SetAndDataOverrideFieldsTypedLikeTheFile) {
  const fs::path a = fresh_dir("set");
  auto j = tiny_run_config(a / "out", 3);
  j["data"]["path"] = (a / "missing-data").string();
  auto cfg = write_json(a / "run.json", j);
  auto r = run_command(train(
      cfg,
      "--data " + tiny_data_dir().string() +
          " --set schedule.lr=1e-3 --set train.eval_every=2 --set optim.decay_embeddings=false "
          "--steps 5 --steps 3"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto recs = records(a / "out/metrics.jsonl");
  const auto& config = recs.front()["config"];
  EXPECT_DOUBLE_EQ(config["schedule"]["lr"].get<double>(), 1e-3);
  EXPECT_EQ(config["train"]["eval_every"], 2);
  EXPECT_EQ(config["train"]["steps"], 3);  // the last --steps wins
  EXPECT_EQ(config["optim"]["decay_embeddings"], false);
  EXPECT_EQ(config["data"]["path"], tiny_data_dir().string());

  struct Case {
    std::string set;
    std::string expect;
  };
  for (const Case& c : std::vector<Case>{{"train.steps=ten", "'steps' must be an integer"},
                                         {"train.steps=0", "'steps' must be positive"},
                                         {"train.stepz=3", "unknown field 'stepz'"},
                                         {"train.device=tpu", "'device'"},
                                         {"schedule.lr=-1", "'lr'"},
                                         {"nosuch.x=1", "unknown section 'nosuch'"},
                                         {"train.steps", "expected section.field=value"},
                                         {"steps=3", "must be section.field"}}) {
    r = run_command(train(cfg, "--overwrite --set " + c.set));
    EXPECT_EQ(r.status, 1) << c.set << ": " << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.set << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
}

TEST(RunFolder, InitFromStartsANewRunFromACheckpointsWeights) {
  const fs::path a = fresh_dir("init");
  auto cfg_a = write_json(a / "a.json", tiny_run_config(a / "pre", 8));
  ASSERT_EQ(run_command(train(cfg_a)).status, 0);
  auto jb = tiny_run_config(a / "fine", 2);
  jb["data"]["seed"] = 11;
  jb["schedule"] = {{"lr", 1e-4}, {"warmup_steps", 0}};
  auto cfg_b = write_json(a / "b.json", jb);
  auto r = run_command(train(cfg_b, "--init-from " + (a / "pre").string()));
  ASSERT_EQ(r.status, 0) << r.output;
  auto fresh = run_command(train(cfg_b, "--out " + (a / "scratch").string()));
  ASSERT_EQ(fresh.status, 0) << fresh.output;
  auto first_loss = [](const fs::path& metrics) {
    for (const auto& j : records(metrics)) {
      if (j["type"] == "train") return j["loss"].get<double>();
    }
    return -1.0;
  };
  const auto recs = records(a / "fine/metrics.jsonl");
  EXPECT_NE(recs.front()["init_from"].get<std::string>().find("step_0000008"), std::string::npos);
  // Pretrained weights: the first step's loss is far below a fresh initialisation's.
  EXPECT_LT(first_loss(a / "fine/metrics.jsonl") + 0.3, first_loss(a / "scratch/metrics.jsonl"));
  // A fresh optimizer and schedule: the run is 2 steps long, starting at step 1.
  EXPECT_TRUE(fs::exists(a / "fine/checkpoints/step_0000002"));

  auto jc = jb;
  jc["model"]["n_layers"] = 3;
  auto cfg_c = write_json(a / "c.json", jc);
  r = run_command(
      train(cfg_c, "--out " + (a / "other").string() + " --init-from " + (a / "pre").string()));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("n_layers (2 vs 3)"), std::string::npos) << r.output;
  r = run_command(train(cfg_b, "--resume --init-from " + (a / "pre").string()));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("contradict"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace difftx::testing
