// Study specs: a valid spec parses; each kind of mistake is one clear error line naming the
// field; the plan merges overrides in order, derives the matched baseline, takes vocabulary and
// record length from the data, and refuses configs that cannot run.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "difftx/core/error.h"
#include "difftx/model/params.h"
#include "difftx/study/plan.h"
#include "difftx/study/spec.h"

namespace difftx::study {
namespace {
using nlohmann::json;

json valid_spec() {
  return json::parse(R"({
    "study": "unit",
    "expected_wall_time": "seconds",
    "seeds": [1, 2],
    "baseline": "Transformer",
    "base_run": {
      "model": {"n_layers": 2, "max_seq_len": 64},
      "data": {"batch_size": 4},
      "schedule": {"lr": 0.003, "warmup_steps": 2},
      "train": {"steps": 10, "eval_every": 5}
    },
    "datasets": [{"name": "mqar small", "path": "unused"}],
    "sizes": [{"name": "d32", "run": {"model": {"d_model": 32}}},
              {"name": "d64", "run": {"model": {"d_model": 64}, "train": {"steps": 12}}}],
    "arms": [{"name": "DIFF V1", "run": {"model": {"attention": "diff_v1", "n_heads": 1}}},
             {"name": "Transformer", "matched_baseline_of": "DIFF V1"}],
    "evaluations": {"loss": {"splits": ["val", "test"]}, "accuracy": {"splits": ["val", "test"]}}
  })");
}

// The error of parsing `spec` after `edit`; fails the test if it parses.
std::string error_of(const std::function<void(json&)>& edit) {
  json j = valid_spec();
  edit(j);
  try {
    parse_study_spec(j, "spec.json");
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "spec parsed: " << j.dump();
  return "";
}

void expect_error(const std::function<void(json&)>& edit, const std::string& part) {
  const std::string message = error_of(edit);
  EXPECT_NE(message.find(part), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
  EXPECT_EQ(message.rfind("spec.json", 0), 0u) << "names the file first: " << message;
}

TEST(StudySpec, ParsesAValidSpec) {
  const StudySpec s = parse_study_spec(valid_spec(), "spec.json");
  EXPECT_EQ(s.name, "unit");
  EXPECT_EQ(s.seeds, (std::vector<std::uint64_t>{1, 2}));
  ASSERT_EQ(s.arms.size(), 2u);
  EXPECT_EQ(s.arms[0].slug, "diff-v1");
  EXPECT_EQ(s.arms[1].matched_baseline_of, "DIFF V1");
  EXPECT_EQ(s.baseline_index(), 1u);
  EXPECT_EQ(s.datasets[0].slug, "mqar-small");
  EXPECT_EQ(s.evaluations.accuracy_splits, (std::vector<std::string>{"val", "test"}));
  EXPECT_EQ(s.fingerprint(), parse_study_spec(valid_spec(), "other.json").fingerprint());
  json changed = valid_spec();
  changed["seeds"] = {1, 3};
  EXPECT_NE(s.fingerprint(), parse_study_spec(changed, "spec.json").fingerprint());
}

TEST(StudySpec, EachMistakeIsOneClearLine) {
  expect_error([](json& j) { j["colour"] = 1; }, "unknown field 'colour'");
  expect_error([](json& j) { j.erase("expected_wall_time"); },
               "missing required field 'expected_wall_time'");
  expect_error([](json& j) { j["study"] = "My Study"; }, "field 'study' must be lower-case");
  expect_error([](json& j) { j["seeds"] = json::array(); },
               "field 'seeds' must be a non-empty array");
  expect_error([](json& j) { j["seeds"] = {1, 1}; }, "lists 1 twice");
  expect_error([](json& j) { j["seeds"] = {1, -2}; }, "whole numbers >= 0");
  expect_error([](json& j) { j["device"] = "tpu"; }, "field 'device' must be \"cpu\" or \"cuda\"");
  expect_error([](json& j) { j["confidence"] = 95; }, "field 'confidence' must be in (0, 1)");
  expect_error([](json& j) { j["baseline"] = "GPT"; }, "names \"GPT\", which is not an arm");
  expect_error([](json& j) { j["arms"][1]["matched_baseline_of"] = "DIFF V3"; },
               "matched_baseline_of names \"DIFF V3\"");
  expect_error([](json& j) { j["arms"][1]["matched_baseline_of"] = "Transformer"; },
               "cannot be the matched baseline of itself");
  expect_error(
      [](json& j) {
        j["arms"][1]["run"] = {{"model", {{"d_model", 8}}}};
      },
      "remove run.model");
  expect_error([](json& j) { j["arms"].erase(1); }, "at least two arms");
  expect_error([](json& j) { j["arms"][1]["name"] = "DIFF V1"; }, "two arms are named \"DIFF V1\"");
  expect_error([](json& j) { j["arms"][1]["name"] = "diff-v1"; }, "share the folder name");
  expect_error([](json& j) { j["arms"][1]["name"] = "++"; }, "has no letter or digit");
  expect_error(
      [](json& j) {
        j["datasets"][0]["synth"] = {{"kind", "mqar"}};
      },
      "exactly one of 'path'");
  expect_error([](json& j) { j["datasets"][0].erase("path"); }, "exactly one of 'path'");
  expect_error([](json& j) { j["base_run"]["data"]["path"] = "x"; }, "remove data.path");
  expect_error([](json& j) { j["sizes"][0]["run"]["train"] = {{"seed", 3}}; }, "remove train.seed");
  expect_error(
      [](json& j) {
        j["arms"][0]["run"]["output"] = {{"dir", "x"}};
      },
      "remove output.dir");
  expect_error([](json& j) { j["base_run"]["train"]["device"] = "cuda"; }, "remove train.device");
  expect_error([](json& j) { j.erase("base_run"); }, "missing required field 'base_run'");
  expect_error([](json& j) { j["evaluations"]["loss"]["splits"] = {"train"}; },
               "splits are \"val\" and \"test\"");
  expect_error([](json& j) { j["evaluations"]["perplexity"] = json::object(); },
               "unknown field 'perplexity'");
  expect_error(
      [](json& j) {
        j["evaluations"]["scaling_fit"] = {{"min_token_fraction", 2}};
      },
      "must be in [0, 1]");
  expect_error(
      [](json& j) {
        j["sizes"].erase(1);
        j["evaluations"]["scaling_fit"] = json::object();
      },
      "give at least two sizes");
}

DatasetInfo record_data(std::uint32_t vocab, std::uint32_t train_len, std::uint32_t test_len) {
  DatasetInfo d;
  d.dir = "data/x";
  d.vocab_size = vocab;
  d.splits["train"] = {train_len, true, 0};
  d.splits["val"] = {train_len, true, 0};
  d.splits["test"] = {test_len, true, 0};
  return d;
}

TEST(StudyPlan, MergesOverridesAndDerivesTheBaseline) {
  const StudySpec s = parse_study_spec(valid_spec(), "spec.json");
  const auto runs = plan_runs(s, {record_data(96, 33, 65)}, "out", "cpu");
  ASSERT_EQ(runs.size(), 8u);  // 1 data set x 2 sizes x 2 seeds x 2 arms
  // Order: size, then seed, then arm.
  EXPECT_EQ(runs[0].id, "mqar-small/d32/diff-v1/seed-1");
  EXPECT_EQ(runs[1].id, "mqar-small/d32/transformer/seed-1");
  EXPECT_EQ(runs[2].id, "mqar-small/d32/diff-v1/seed-2");
  EXPECT_EQ(runs[7].id, "mqar-small/d64/transformer/seed-2");
  EXPECT_EQ(runs[0].dir, std::filesystem::path("out/runs/mqar-small/d32/diff-v1/seed-1"));
  const RunConfig& diff = runs[4].config;  // d64, seed 1, DIFF V1
  EXPECT_EQ(diff.model.d_model, 64);
  EXPECT_EQ(diff.model.attention, AttentionKind::diff_v1);
  EXPECT_EQ(diff.model.head_dim, 32);    // d_model / (2 n_heads)
  EXPECT_EQ(diff.train.steps, 12);       // the size's override over base_run
  EXPECT_EQ(diff.model.vocab_size, 96);  // the data's
  EXPECT_EQ(diff.data.seq_len, 32);      // records of 33 tokens
  EXPECT_EQ(diff.train.seed, 1u);
  EXPECT_EQ(diff.data.seed, 1u);
  EXPECT_EQ(diff.output.dir, runs[4].dir);
  const RunConfig& base = runs[5].config;
  EXPECT_EQ(base.model.attention, AttentionKind::softmax);
  EXPECT_EQ(base.model.n_heads, 2);
  EXPECT_EQ(base.model.head_dim, 32);
  EXPECT_EQ(base.train.steps, 12);
  // Matched: the same parameters but DIFF V1's lambda vectors and head-norm gain.
  EXPECT_EQ(runs[4].parameters - runs[5].parameters,
            2 * (4 * diff.model.head_dim + 2 * diff.model.head_dim));
  EXPECT_EQ(runs[3].seed, 2u);
  EXPECT_EQ(runs[3].config.train.device, "cpu");
}

void expect_plan_error(const std::function<void(json&)>& edit, const DatasetInfo& data,
                       const std::string& part) {
  json j = valid_spec();
  edit(j);
  const StudySpec s = parse_study_spec(j, "spec.json");
  try {
    plan_runs(s, {data}, "out", "cpu");
    ADD_FAILURE() << "planned: " << j.dump();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(part), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

TEST(StudyPlan, RefusesRunsThatCannotWork) {
  const DatasetInfo ok = record_data(96, 33, 65);
  expect_plan_error([](json& j) { j["base_run"]["model"]["vocab_size"] = 100; }, ok,
                    "model.vocab_size is 100 but data set \"mqar small\" has 96 ids");
  expect_plan_error([](json& j) { j["base_run"]["data"]["seq_len"] = 16; }, ok,
                    "data.seq_len is 16 but data set \"mqar small\" holds examples of 33 tokens");
  expect_plan_error([](json& j) { j["base_run"]["model"]["max_seq_len"] = 48; }, ok,
                    "split \"test\" of data set \"mqar small\" has sequences of 64 tokens but "
                    "model.max_seq_len is 48");
  expect_plan_error([](json& j) { j["base_run"]["model"]["n_layers"] = 0; }, ok,
                    "run mqar-small/d32/diff-v1/seed-1");
  expect_plan_error([](json& j) { j["arms"][0]["run"]["model"]["attention"] = "softmax"; }, ok,
                    "already a softmax model");
  DatasetInfo no_test = ok;
  no_test.splits.erase("test");
  expect_plan_error([](json&) {}, no_test, "the evaluations read split \"test\"");
}

TEST(StudyPlan, DerivesTheHeadCountFromHeadDim) {
  json j = valid_spec();
  j["arms"] = json::parse(R"([
    {"name": "DIFF V1", "run": {"model": {"attention": "diff_v1", "head_dim": 16}}},
    {"name": "DIFF V2", "run": {"model": {"attention": "diff_v2", "head_dim": 16}}},
    {"name": "Transformer", "matched_baseline_of": "DIFF V1"}])");
  const StudySpec s = parse_study_spec(j, "spec.json");
  const auto runs = plan_runs(s, {record_data(96, 33, 65)}, "out", "cpu");
  ASSERT_EQ(runs.size(), 12u);
  // d64: V1 2 heads (2 x 2 x 16 = 64), V2 4 heads, the baseline of V1 4 heads of 16.
  EXPECT_EQ(runs[6].config.model.n_heads, 2);
  EXPECT_EQ(runs[7].config.model.n_heads, 4);
  EXPECT_EQ(runs[8].config.model.n_heads, 4);
  EXPECT_EQ(runs[8].config.model.attention, AttentionKind::softmax);
  // d32: V1 1 head.
  EXPECT_EQ(runs[0].config.model.n_heads, 1);
  j["arms"][0]["run"]["model"]["head_dim"] = 12;  // 32 is no multiple of 24
  const StudySpec bad = parse_study_spec(j, "spec.json");
  try {
    plan_runs(bad, {record_data(96, 33, 65)}, "out", "cpu");
    ADD_FAILURE() << "planned";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("d_model 32 is not a multiple of 24"), std::string::npos)
        << e.what();
  }
}

TEST(StudySpec, MergeJson) {
  json a = {{"model", {{"d_model", 32}, {"n_layers", 2}}}, {"train", {{"steps", 5}}}};
  merge_json(a, {{"model", {{"d_model", 64}}}, {"data", {{"seq_len", 8}}}});
  EXPECT_EQ(a, json({{"model", {{"d_model", 64}, {"n_layers", 2}}},
                     {"train", {{"steps", 5}}},
                     {"data", {{"seq_len", 8}}}}));
  EXPECT_EQ(slugify("DIFF V1 (h=2)"), "diff-v1-h-2");
  EXPECT_EQ(slugify("  p64/d128 "), "p64-d128");
}

}  // namespace
}  // namespace difftx::study
