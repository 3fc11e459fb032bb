// Command-line overrides of run configs: --set typing, --steps and the schedule it carries
// (horizon, warmup scaled instead of an all-warmup run), and the errors they raise.
#include <gtest/gtest.h>

#include "difftx/core/error.h"
#include "difftx/train/config_overrides.h"
#include "train_test_util.h"

namespace difftx {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

fs::path write_config(const json& j, const std::string& name) {
  return testing::write_json(fs::temp_directory_path() /
                                 ("difftx_overrides_" + std::to_string(::getpid())) /
                                 (name + ".json"),
                             j);
}

json base_config() {
  return {{"model",
           {{"vocab_size", 384},
            {"d_model", 32},
            {"n_layers", 2},
            {"attention", "diff_v1"},
            {"n_heads", 2},
            {"n_kv_heads", 1},
            {"max_seq_len", 32}}},
          {"data", {{"path", "data/x"}, {"seq_len", 16}}},
          {"schedule", {{"lr", 2e-3}, {"warmup_steps", 50}, {"min_lr", 2e-4}}},
          {"train", {{"steps", 600}}}};
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SetOverride, ValuesAreTypedLikeTheFile) {
  json j = base_config();
  apply_set_override(j, "schedule.lr=1e-3");
  apply_set_override(j, "train.eval_every=25");
  apply_set_override(j, "optim.decay_embeddings=false");
  apply_set_override(j, "schedule.decay=linear");        // a bare word: a string
  apply_set_override(j, "data.path=2024");               // a string field stays text
  apply_set_override(j, "output.dir=\"runs/a b\"");      // a quoted JSON string: unquoted
  apply_set_override(j, "model.rope_style=half_split");  // a new field in a section
  EXPECT_TRUE(j["schedule"]["lr"].is_number_float());
  EXPECT_EQ(j["train"]["eval_every"], 25);
  EXPECT_EQ(j["optim"]["decay_embeddings"], false);
  EXPECT_EQ(j["schedule"]["decay"], "linear");
  EXPECT_EQ(j["data"]["path"], "2024");
  EXPECT_EQ(j["output"]["dir"], "runs/a b");
  EXPECT_EQ(j["model"]["rope_style"], "half_split");
  const RunConfig cfg = RunConfig::from_json(j, "test");
  EXPECT_DOUBLE_EQ(cfg.schedule.lr, 1e-3);
  EXPECT_EQ(cfg.schedule.decay, ScheduleConfig::Decay::linear);
  EXPECT_FALSE(cfg.optim.decay_embeddings);
}

TEST(SetOverride, MalformedAssignmentsAreRefused) {
  json j = base_config();
  EXPECT_NE(
      error_of([&] { apply_set_override(j, "train.steps"); }).find("expected section.field=value"),
      std::string::npos);
  EXPECT_NE(error_of([&] { apply_set_override(j, "steps=1"); }).find("must be section.field"),
            std::string::npos);
  EXPECT_NE(error_of([&] { apply_set_override(j, "a.b.c=1"); }).find("must be section.field"),
            std::string::npos);
  EXPECT_NE(
      error_of([&] { apply_set_override(j, "trian.steps=1"); }).find("unknown section 'trian'"),
      std::string::npos);
}

TEST(LoadRunConfig, StepsCarryTheHorizonAndScaleAnAllWarmupSchedule) {
  const fs::path file = write_config(base_config(), "steps");
  ConfigOverrides o;
  o.steps = 1200;  // longer: warmup kept
  LoadedRunConfig l = load_run_config(file, o);
  EXPECT_EQ(l.config.train.steps, 1200);
  EXPECT_EQ(l.config.schedule.total_steps, 1200);
  EXPECT_EQ(l.config.schedule.warmup_steps, 50);
  EXPECT_TRUE(l.notes.empty());

  o.steps = 30;  // shorter than the warmup: scaled to its share (50/600 of 30 = 2.5 -> 3)
  l = load_run_config(file, o);
  EXPECT_EQ(l.config.schedule.total_steps, 30);
  EXPECT_EQ(l.config.schedule.warmup_steps, 3);
  ASSERT_EQ(l.notes.size(), 1u);
  EXPECT_NE(l.notes[0].find("scaled to 3"), std::string::npos) << l.notes[0];
  EXPECT_LT(learning_rate(l.config.schedule, 29), l.config.schedule.lr);  // it decays

  o.set = {"schedule.warmup_steps=10"};  // --set wins over the scaling
  l = load_run_config(file, o);
  EXPECT_EQ(l.config.schedule.warmup_steps, 10);

  o = {};
  o.steps = 0;
  EXPECT_NE(error_of([&] { load_run_config(file, o); }).find("--steps must be at least 1"),
            std::string::npos);
}

TEST(LoadRunConfig, OverridesAreValidatedByTheFileReader) {
  const fs::path file = write_config(base_config(), "validate");
  ConfigOverrides o;
  o.set = {"train.steps=-3"};
  std::string msg = error_of([&] { load_run_config(file, o); });
  EXPECT_NE(msg.find("with --set"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'steps' must be positive"), std::string::npos) << msg;
  o.set = {"data.seq_len=64"};  // > max_seq_len, checked across sections like the file
  msg = error_of([&] { load_run_config(file, o); });
  EXPECT_NE(msg.find("max_seq_len"), std::string::npos) << msg;
  o = {};
  o.data = "elsewhere";
  o.device = "cpu";
  o.out = "runs/other";
  const RunConfig cfg = load_run_config(file, o).config;
  EXPECT_EQ(cfg.data.path, "elsewhere");
  EXPECT_EQ(cfg.output.dir, "runs/other");

  const fs::path bare = write_config(base_config()["model"], "bare");
  msg = error_of([&] { load_run_config(bare, {}); });
  EXPECT_NE(msg.find("is a model config"), std::string::npos) << msg;
}

}  // namespace
}  // namespace difftx
