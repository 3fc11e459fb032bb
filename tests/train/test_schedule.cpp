// Tests of the learning-rate schedule: exact values per decay, monotonicity, edges, strict JSON.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <string>

#include "difftx/core/error.h"
#include "difftx/train/schedule.h"

namespace difftx {
namespace {
using nlohmann::json;
using Decay = ScheduleConfig::Decay;

ScheduleConfig make(Decay decay, double lr = 1e-3, double min_lr = 1e-4, int warmup = 10,
                    int total = 110) {
  ScheduleConfig c;
  c.lr = lr;
  c.min_lr = min_lr;
  c.warmup_steps = warmup;
  c.total_steps = total;
  c.decay = decay;
  return c;
}

// Expects parsing `text` to throw a difftx::Error whose message contains every `needle`.
void expect_json_error(const std::string& text, std::initializer_list<std::string> needles) {
  try {
    schedule_from_json(json::parse(text), "run.json (schedule)");
    ADD_FAILURE() << "no error for " << text;
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("run.json (schedule)"), std::string::npos) << msg;
    for (const auto& n : needles)
      EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
}

TEST(Schedule, WarmupIsLinearFromLrOverWarmup) {
  for (Decay d : {Decay::cosine, Decay::linear, Decay::constant}) {
    auto c = make(d);
    EXPECT_DOUBLE_EQ(learning_rate(c, 0), 1e-4);   // lr * 1/10
    EXPECT_DOUBLE_EQ(learning_rate(c, 4), 5e-4);   // lr * 5/10
    EXPECT_DOUBLE_EQ(learning_rate(c, 9), 1e-3);   // lr * 10/10: warmup ends at the peak
    EXPECT_DOUBLE_EQ(learning_rate(c, 10), 1e-3);  // decay starts at the peak
  }
}

TEST(Schedule, CosineExactValues) {
  auto c = make(Decay::cosine);  // decay over steps 10 .. 110 (100 steps)
  EXPECT_DOUBLE_EQ(learning_rate(c, 60), 1e-4 + 9e-4 * 0.5);  // half way: cos(pi/2) = 0
  EXPECT_NEAR(learning_rate(c, 35), 1e-4 + 9e-4 * 0.5 * (1 + std::cos(std::numbers::pi * 0.25)),
              1e-18);
  EXPECT_NEAR(learning_rate(c, 35), 1e-4 + 9e-4 * (0.5 + std::sqrt(0.5) / 2), 1e-15);
  EXPECT_DOUBLE_EQ(learning_rate(c, 110), 1e-4);  // reaches min_lr at total_steps
  EXPECT_DOUBLE_EQ(learning_rate(c, 111), 1e-4);  // and stays there
  EXPECT_DOUBLE_EQ(learning_rate(c, 1000000), 1e-4);
  EXPECT_GT(learning_rate(c, 109), 1e-4);  // the last trained step is still above the floor
}

TEST(Schedule, LinearExactValues) {
  auto c = make(Decay::linear);
  EXPECT_DOUBLE_EQ(learning_rate(c, 60), 5.5e-4);
  EXPECT_DOUBLE_EQ(learning_rate(c, 35), 1e-3 - 9e-4 * 0.25);
  EXPECT_DOUBLE_EQ(learning_rate(c, 85), 1e-3 - 9e-4 * 0.75);
  EXPECT_DOUBLE_EQ(learning_rate(c, 110), 1e-4);
  EXPECT_DOUBLE_EQ(learning_rate(c, 5000), 1e-4);
}

TEST(Schedule, ConstantKeepsPeakAfterWarmup) {
  auto c = make(Decay::constant);
  EXPECT_DOUBLE_EQ(learning_rate(c, 10), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(c, 109), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(c, 110), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(c, 100000), 1e-3);
}

TEST(Schedule, MonotoneUpThenDown) {
  for (Decay d : {Decay::cosine, Decay::linear, Decay::constant}) {
    auto c = make(d, 3e-4, 3e-5, 37, 1000);
    double prev = 0;
    for (int s = 0; s < c.warmup_steps; ++s) {
      double lr = learning_rate(c, s);
      EXPECT_GT(lr, prev) << decay_name(d) << " step " << s;
      prev = lr;
    }
    for (int s = c.warmup_steps; s <= c.total_steps + 5; ++s) {
      double lr = learning_rate(c, s);
      EXPECT_LE(lr, prev + 1e-18) << decay_name(d) << " step " << s;
      EXPECT_GE(lr, c.min_lr) << decay_name(d) << " step " << s;
      EXPECT_LE(lr, c.lr) << decay_name(d) << " step " << s;
      if (d != Decay::constant && s > c.warmup_steps && s <= c.total_steps) {
        EXPECT_LT(lr, prev) << decay_name(d) << " strictly decreasing at step " << s;
      }
      prev = lr;
    }
  }
}

TEST(Schedule, NoWarmupStartsAtPeak) {
  auto c = make(Decay::cosine, 2e-3, 0.0, 0, 4);
  EXPECT_DOUBLE_EQ(learning_rate(c, 0), 2e-3);
  EXPECT_DOUBLE_EQ(learning_rate(c, 2), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(c, 4), 0.0);
}

TEST(Schedule, WarmupEqualsTotalHasNoDecayPhase) {
  auto c = make(Decay::cosine, 1.0, 0.5, 4, 4);
  EXPECT_DOUBLE_EQ(learning_rate(c, 0), 0.25);
  EXPECT_DOUBLE_EQ(learning_rate(c, 3), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(c, 4), 0.5);
  auto k = make(Decay::constant, 1.0, 0.5, 4, 4);
  EXPECT_DOUBLE_EQ(learning_rate(k, 4), 1.0);
}

TEST(Schedule, SingleStepRun) {
  auto c = make(Decay::linear, 1.0, 0.1, 1, 1);
  EXPECT_DOUBLE_EQ(learning_rate(c, 0), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(c, 1), 0.1);
  auto n = make(Decay::linear, 1.0, 0.1, 0, 1);
  EXPECT_DOUBLE_EQ(learning_rate(n, 0), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(n, 1), 0.1);
}

TEST(Schedule, MinLrEqualToLrIsFlat) {
  auto c = make(Decay::cosine, 1e-3, 1e-3, 0, 100);
  for (int s = 0; s <= 120; ++s) EXPECT_DOUBLE_EQ(learning_rate(c, s), 1e-3);
}

TEST(Schedule, NegativeStepIsAnError) {
  auto c = make(Decay::cosine);
  EXPECT_THROW(learning_rate(c, -1), Error);
}

TEST(ScheduleJson, ParsesAllFields) {
  auto c = schedule_from_json(json::parse(R"({"lr": 3e-4, "min_lr": 3e-5, "warmup_steps": 200,
      "total_steps": 5000, "decay": "linear", "comment": "short run"})"),
                              "s");
  EXPECT_DOUBLE_EQ(c.lr, 3e-4);
  EXPECT_DOUBLE_EQ(c.min_lr, 3e-5);
  EXPECT_EQ(c.warmup_steps, 200);
  EXPECT_EQ(c.total_steps, 5000);
  EXPECT_EQ(c.decay, Decay::linear);
}

TEST(ScheduleJson, DefaultsAndRoundTrip) {
  auto c = schedule_from_json(json::parse(R"({"lr": 1, "total_steps": 10})"), "s");
  EXPECT_DOUBLE_EQ(c.lr, 1.0);  // an integer is a valid number
  EXPECT_DOUBLE_EQ(c.min_lr, 0.0);
  EXPECT_EQ(c.warmup_steps, 0);
  EXPECT_EQ(c.decay, Decay::cosine);
  for (Decay d : {Decay::cosine, Decay::linear, Decay::constant}) {
    auto orig = make(d, 6e-4, 6e-5, 7, 99);
    auto back = schedule_from_json(schedule_to_json(orig), "s");
    EXPECT_DOUBLE_EQ(back.lr, orig.lr);
    EXPECT_DOUBLE_EQ(back.min_lr, orig.min_lr);
    EXPECT_EQ(back.warmup_steps, orig.warmup_steps);
    EXPECT_EQ(back.total_steps, orig.total_steps);
    EXPECT_EQ(back.decay, orig.decay);
  }
}

TEST(ScheduleJson, RejectsBadInput) {
  expect_json_error(R"([1, 2])", {"JSON object", "array"});
  expect_json_error(R"({"lr": 1e-3, "total_steps": 10, "warmup": 5})", {"unknown field 'warmup'"});
  expect_json_error(R"({"total_steps": 10})", {"missing required field 'lr'"});
  expect_json_error(R"({"lr": 1e-3})", {"missing required field 'total_steps'"});
  expect_json_error(R"({"lr": "1e-3", "total_steps": 10})", {"'lr'", "must be a number", "string"});
  expect_json_error(R"({"lr": 1e-3, "total_steps": 10.5})", {"'total_steps'", "integer"});
  expect_json_error(R"({"lr": 1e-3, "total_steps": 10, "warmup_steps": true})",
                    {"'warmup_steps'", "integer"});
  expect_json_error(R"({"lr": 1e-3, "total_steps": 10, "decay": 1})", {"'decay'", "string"});
  expect_json_error(R"({"lr": 1e-3, "total_steps": 10, "decay": "exp"})",
                    {"'decay'", "\"exp\"", "cosine"});
  expect_json_error(R"({"lr": 1e-3, "total_steps": 10, "comment": 3})", {"'comment'", "string"});
  expect_json_error(R"({"lr": -1e-3, "total_steps": 10})", {"'lr'", "positive"});
  expect_json_error(R"({"lr": 0, "total_steps": 10})", {"'lr'", "positive"});
  expect_json_error(R"({"lr": 1e-3, "min_lr": -1e-5, "total_steps": 10})", {"'min_lr'", ">= 0"});
  expect_json_error(R"({"lr": 1e-3, "min_lr": 1e-2, "total_steps": 10})",
                    {"'min_lr'", "exceed 'lr'"});
  expect_json_error(R"({"lr": 1e-3, "total_steps": 0})", {"'total_steps'", "positive"});
  expect_json_error(R"({"lr": 1e-3, "total_steps": -5})", {"'total_steps'", "positive"});
  expect_json_error(R"({"lr": 1e-3, "total_steps": 10, "warmup_steps": -1})",
                    {"'warmup_steps'", ">= 0"});
  expect_json_error(R"({"lr": 1e-3, "total_steps": 10, "warmup_steps": 11})",
                    {"'warmup_steps'", "(11)", "'total_steps' (10)"});
  expect_json_error(R"({"lr": 1e-3, "total_steps": 3000000000})",
                    {"'total_steps'", "out of range"});
}

TEST(ScheduleJson, ValidateRejectsNonFinite) {
  auto c = make(Decay::cosine);
  c.lr = std::nan("");
  EXPECT_THROW(validate_schedule(c, "s"), Error);
  c = make(Decay::cosine);
  c.min_lr = INFINITY;
  EXPECT_THROW(validate_schedule(c, "s"), Error);
  EXPECT_NO_THROW(validate_schedule(make(Decay::cosine), "s"));
}

}  // namespace
}  // namespace difftx
