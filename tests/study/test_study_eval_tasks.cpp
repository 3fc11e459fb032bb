// The study's eval-library measurements: the shipped needle-mix and outliers-quant specs parse
// and plan (4K needle prompts fit the model, the matched baseline is derived, the evaluation
// options are read); each mistake in the needle, outliers and quant_logits sections, or a data
// set that cannot feed them, is one clear error line; and a tiny study on the CPU (needle-mix
// data made from generated text, 1-layer models) measures retrieval accuracy per length, the
// outlier ratios and the loss at 16/8/4-bit attention logits of every run, and reports them with
// paired intervals in results.json.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include "difftx/core/error.h"
#include "difftx/study/plan.h"
#include "difftx/study/runner.h"
#include "difftx/study/spec.h"

namespace difftx::study {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kConfigs = fs::path(DIFFTX_SOURCE_DIR) / "configs/studies";

// A needle-mix data set as planning sees it (its task from meta.json).
DatasetInfo needle_mix_info(std::uint32_t vocab) {
  DatasetInfo d;
  d.dir = "needle-data";
  d.vocab_size = vocab;
  for (const char* s : {"train", "val", "test"}) d.splits[s] = SplitInfo{};
  d.task = {{"kind", "needle-mix"}, {"context", 4096}, {"digits", 5}};
  return d;
}

DatasetInfo text_info(std::uint32_t vocab) {
  DatasetInfo d;
  d.dir = "text-data";
  d.vocab_size = vocab;
  d.splits["train"] = SplitInfo{};
  d.splits["val"] = SplitInfo{};
  return d;
}

DatasetInfo mqar_info() {
  DatasetInfo d;
  d.dir = "mqar-data";
  d.vocab_size = 640;
  d.splits["train"] = SplitInfo{33, true, 0};
  d.splits["val"] = SplitInfo{33, true, 0};
  d.task = {{"kind", "mqar"}};
  return d;
}

TEST(StudyEvalTasks, ShippedNeedleSpecParsesAndPlans) {
  const StudySpec s = load_study_spec(kConfigs / "needle-mix.json");
  ASSERT_TRUE(s.evaluations.needle.enabled);
  EXPECT_EQ(s.evaluations.needle.lengths, (std::vector<int>{1024, 2048, 4087}));
  EXPECT_EQ(s.evaluations.needle.configs, "1:1,2:1");
  EXPECT_FALSE(s.evaluations.outliers.enabled);
  ASSERT_TRUE(s.datasets[0].synth.has_value());
  EXPECT_EQ(s.datasets[0].synth->at("kind"), "needle-mix");
  const auto runs = plan_runs(s, {needle_mix_info(4096)}, "out", "cuda");
  ASSERT_EQ(runs.size(), 6u);  // 3 seeds x 2 arms
  for (const PlannedRun& r : runs) {
    EXPECT_EQ(r.config.model.max_seq_len, 4096);
    EXPECT_EQ(r.config.data.seq_len, 4096);
    EXPECT_EQ(r.config.train.device, "cuda");
  }
  // Same seed: DIFF V1 and its matched softmax baseline within 1% of its parameters.
  EXPECT_EQ(runs[0].config.model.attention, AttentionKind::diff_v1);
  EXPECT_EQ(runs[1].config.model.attention, AttentionKind::softmax);
  EXPECT_EQ(runs[0].seed, runs[1].seed);
  EXPECT_LT(std::abs(double(runs[0].parameters - runs[1].parameters)),
            0.01 * double(runs[0].parameters));
}

TEST(StudyEvalTasks, ShippedOutlierSpecParsesAndPlans) {
  const StudySpec s = load_study_spec(kConfigs / "outliers-quant.json");
  EXPECT_FALSE(s.evaluations.needle.enabled);
  ASSERT_TRUE(s.evaluations.outliers.enabled);
  EXPECT_EQ(s.evaluations.outliers.tokens, 65536u);
  ASSERT_TRUE(s.evaluations.quant_logits.enabled);
  EXPECT_EQ(s.evaluations.quant_logits.bits, (std::vector<int>{16, 8, 6, 4}));
  EXPECT_FALSE(s.evaluations.quant_logits.per_head);
  const auto runs = plan_runs(s, {text_info(4096)}, "out", "cuda");
  ASSERT_EQ(runs.size(), 9u);  // 3 seeds x 3 arms
  EXPECT_EQ(runs[1].config.model.attention, AttentionKind::diff_v2);
}

// A small valid spec with all three measurements, on a needle-mix data set.
json eval_spec() {
  return json::parse(R"({
    "study": "unit",
    "expected_wall_time": "seconds",
    "seeds": [1, 2],
    "baseline": "Transformer",
    "base_run": {"model": {"n_layers": 1, "d_model": 16, "max_seq_len": 128},
                 "data": {"seq_len": 128, "batch_size": 2}, "train": {"steps": 4}},
    "datasets": [{"name": "nm", "path": "unused"}],
    "sizes": [{"name": "d16"}],
    "arms": [{"name": "DIFF V1", "run": {"model": {"attention": "diff_v1", "n_heads": 1}}},
             {"name": "Transformer", "matched_baseline_of": "DIFF V1"}],
    "evaluations": {"needle": {"lengths": [64, 119]}, "outliers": {"tokens": 512},
                    "quant_logits": {"bits": [4, 8]}}
  })");
}

std::string error_of(const std::function<void(json&)>& edit, const DatasetInfo& data) {
  json j = eval_spec();
  edit(j);
  try {
    const StudySpec s = parse_study_spec(j, "spec.json");
    plan_runs(s, {data}, "out", "cpu");
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "spec accepted: " << j.dump();
  return "";
}

void expect_error(const std::function<void(json&)>& edit, const std::string& part,
                  const DatasetInfo& data = needle_mix_info(512)) {
  const std::string message = error_of(edit, data);
  EXPECT_NE(message.find(part), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
  EXPECT_EQ(message.rfind("spec.json", 0), 0u) << "names the file first: " << message;
}

TEST(StudyEvalTasks, ValidSmallSpecOrdersBitsAndAddsSixteen) {
  const StudySpec s = parse_study_spec(eval_spec(), "spec.json");
  EXPECT_EQ(s.evaluations.quant_logits.bits, (std::vector<int>{16, 8, 4}));
  EXPECT_EQ(s.evaluations.needle.depths, (std::vector<int>{0, 25, 50, 75, 100}));
  EXPECT_EQ(plan_runs(s, {needle_mix_info(512)}, "out", "cpu").size(), 4u);
}

TEST(StudyEvalTasks, EachMistakeIsOneClearLine) {
  expect_error([](json& j) { j["evaluations"]["needle"].erase("lengths"); },
               "missing required field 'lengths'");
  expect_error([](json& j) { j["evaluations"]["needle"]["lengths"] = {64, 64}; }, "lists 64 twice");
  expect_error(
      [](json& j) {
        j["evaluations"]["needle"]["depths"] = {0, 101};
      },
      "whole numbers in [0, 100]");
  expect_error([](json& j) { j["evaluations"]["needle"]["needles"] = "2:3"; },
               "field 'needles' is \"2:3\"");
  expect_error([](json& j) { j["evaluations"]["needle"]["samples"] = 0; },
               "field 'samples' must be a whole number >= 1");
  expect_error([](json& j) { j["evaluations"]["needle"]["colour"] = 1; },
               "evaluations.needle: unknown field 'colour'");
  expect_error(
      [](json& j) {
        j["evaluations"]["quant_logits"]["bits"] = {8, 1};
      },
      "whole numbers in [2, 16]");
  expect_error([](json& j) { j["evaluations"]["outliers"]["tokens"] = 0; },
               "field 'tokens' must be a whole number >= 1");
  // Prompt + answer (5 digits + 4) beyond max_seq_len 128.
  expect_error([](json& j) { j["evaluations"]["needle"]["lengths"] = {120}; },
               "use lengths of at most 119");
  expect_error([](json& j) { j["evaluations"]["outliers"]["context"] = 256; },
               "evaluations.outliers.context is 256");
  // Needles need needle-mix data; outliers and quantization need text, not task records.
  expect_error([](json&) {}, "evaluations.needle needs needle-mix data", text_info(512));
  expect_error([](json& j) { j["evaluations"].erase("needle"); },
               "evaluations.outliers reads the validation text", mqar_info());
}

// ---- a tiny study end to end on the CPU ---------------------------------------------------

// Documents of capitalised sentences of a small vocabulary (clear sentence ends).
void write_sentences(const fs::path& dir, int files) {
  const char* words[] = {"alpha", "beta",  "gamma",  "delta", "river",  "stone",  "light",
                         "north", "quiet", "market", "story", "winter", "garden", "signal"};
  fs::create_directories(dir);
  std::uint64_t x = 11;
  for (int f = 0; f < files; ++f) {
    std::string text;
    for (int s = 0; s < 60; ++s) {
      std::string sentence;
      for (int w = 0; w < 8; ++w) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        if (w > 0) sentence += ' ';
        sentence += words[(x >> 33) % 14];
      }
      sentence[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(sentence[0])));
      text += sentence + (s % 6 == 5 ? ".\n\n" : ". ");
    }
    std::ofstream(dir / ("doc" + std::to_string(f) + ".txt")) << text;
  }
}

double metric(const json& run, const std::string& key) {
  EXPECT_TRUE(run.at("metrics").contains(key)) << run.at("id") << " lacks " << key;
  return run.at("metrics").value(key, NAN);
}

TEST(StudyEvalTasks, TinyStudyMeasuresNeedleOutliersAndQuantization) {
  const fs::path tmp =
      fs::temp_directory_path() / ("difftx_study_tasks_" + std::to_string(::getpid()));
  fs::remove_all(tmp);
  write_sentences(tmp / "text", 16);
  json j = eval_spec();
  j["datasets"][0] = {{"name", "nm"},
                      {"synth",
                       {{"kind", "needle-mix"},
                        {"input", {(tmp / "text").string()}},
                        {"vocab_size", 400},
                        {"context", 128},
                        {"test_documents", 8},
                        {"test_numbers", 200},
                        {"val_fraction", 0.25},
                        {"seed", 3}}}};
  j["evaluations"] = json::parse(R"({
    "loss": {"splits": ["val"]},
    "needle": {"lengths": [64, 119], "depths": [0, 100], "samples": 2},
    "outliers": {"tokens": 512, "context": 64},
    "quant_logits": {"bits": [8, 4], "tokens": 512, "context": 64}
  })");
  const StudySpec spec = parse_study_spec(j, "tiny.json");
  StudyOptions options;
  options.out = tmp / "study";
  options.quiet = true;
  const StudyOutcome outcome = run_study(spec, options);
  ASSERT_TRUE(outcome.completed);
  std::ifstream in(outcome.results);
  const json res = json::parse(in);
  ASSERT_EQ(res.at("runs").size(), 4u);
  for (const json& r : res.at("runs")) {
    for (const char* key : {"needle_accuracy_64", "needle_accuracy_119"}) {
      const double acc = metric(r, key);
      EXPECT_GE(acc, 0.0);
      EXPECT_LE(acc, 1.0);
    }
    EXPECT_GE(metric(r, "logit_top1_over_median"), 1.0);
    EXPECT_GE(metric(r, "hidden_top1_over_median"), 1.0);
    EXPECT_GT(metric(r, "hidden_top1"), 0.0);
    EXPECT_GT(metric(r, "logit_top1"), 0.0);
    const double l16 = metric(r, "quant_loss_b16");
    EXPECT_NEAR(metric(r, "quant_delta_b8"), metric(r, "quant_loss_b8") - l16, 1e-5);
    EXPECT_NEAR(metric(r, "quant_delta_b4"), metric(r, "quant_loss_b4") - l16, 1e-5);
    EXPECT_GE(metric(r, "quant_kl_b4"), 0.0);
    // The 16-bit probe path is the unquantized model: its loss is the fused path's.
    const json& q = r.at("evaluations").at("quant_logits");
    EXPECT_NEAR(l16, q.at("fused_loss").get<double>(), 2e-3);
    // The needle keys are the data set's held-out cities, never a training city.
    const json& needle = r.at("evaluations").at("needle");
    EXPECT_EQ(needle.at("cells").size(), 2u * 2u);   // 2 lengths x 2 depths x one config
    EXPECT_EQ(needle.at("options").at("keys"), 20);  // needles.json's test_cities
  }
  // Metrics in report order (table, then by number: bits descending), each with a paired
  // difference of the DIFF arm against the baseline.
  std::vector<std::string> keys;
  for (const json& m : res.at("metrics")) keys.push_back(m.at("key"));
  const auto pos = [&](const std::string& k) {
    return std::find(keys.begin(), keys.end(), k) - keys.begin();
  };
  EXPECT_LT(pos("val_loss"), pos("logit_top1"));
  EXPECT_LT(pos("needle_accuracy_64"), pos("needle_accuracy_119"));
  EXPECT_LT(pos("quant_loss_b16"), pos("quant_loss_b8"));
  EXPECT_LT(pos("quant_loss_b8"), pos("quant_loss_b4"));
  EXPECT_LT(pos("quant_loss_b4"), std::ptrdiff_t(keys.size()));
  int paired_needle = 0;
  for (const json& p : res.at("paired")) {
    if (p.at("metric") == "needle_accuracy_119") {
      ++paired_needle;
      EXPECT_EQ(p.at("n"), 2);
      EXPECT_EQ(p.at("arm"), "DIFF V1");
    }
  }
  EXPECT_EQ(paired_needle, 1);
  // The report shows the new metrics.
  std::ifstream html_in(outcome.report);
  const std::string html((std::istreambuf_iterator<char>(html_in)), {});
  EXPECT_NE(html.find("needle retrieval accuracy at 119 tokens"), std::string::npos);
  EXPECT_NE(html.find("validation loss, attention logits at 4 bits"), std::string::npos);
  fs::remove_all(tmp);
}

}  // namespace
}  // namespace difftx::study
