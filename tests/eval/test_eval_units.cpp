// Unit tests of the evaluation layer's pure parts: the |x| summary (top-k and histogram median
// against sorting), the threshold selection, needle samples and prompts (depth, key uniqueness,
// answer, exact length), ICL data (JSONL errors, balanced demonstrations), the PNG encoder and
// base64, results files, sentence splitting and the spread statistics.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/eval/icl_data.h"
#include "difftx/eval/image.h"
#include "difftx/eval/needle_gen.h"
#include "difftx/eval/results.h"
#include "difftx/eval/stats.h"
#include "difftx/model/attention_probe.h"
#include "eval_test_util.h"

namespace difftx::eval {
namespace {
using testing::TempDir;

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// ---------------------------------------------------------------- statistics

TEST(AbsSummary, TopKAndMedianMatchSorting) {
  std::mt19937_64 rng(5);
  std::lognormal_distribution<double> d(0.0, 2.0);
  AbsSummary all, merged, part;
  std::vector<double> values;
  for (int chunk = 0; chunk < 7; ++chunk) {
    std::vector<double> v;
    for (int i = 0; i < 1000 + 37 * chunk; ++i) v.push_back((rng() & 1 ? -1 : 1) * d(rng));
    all.add_values(v);
    part = AbsSummary();
    part.add_values(v);
    merged.merge(part);
    values.insert(values.end(), v.begin(), v.end());
  }
  std::vector<double> a;
  for (double v : values) a.push_back(std::abs(float(v)));
  std::sort(a.begin(), a.end(), std::greater<double>());
  for (int k : {1, 2, 3, 10, 100}) {
    EXPECT_EQ(all.top(k), a[std::size_t(k - 1)]) << k;
    EXPECT_EQ(merged.top(k), a[std::size_t(k - 1)]) << k;
  }
  std::sort(a.begin(), a.end());
  const double exact = a[(a.size() - 1) / 2];
  EXPECT_LE(std::abs(all.median() - exact) / exact, 1.0 / 256);
  EXPECT_EQ(all.count(), values.size());
  EXPECT_EQ(merged.median(), all.median());
  const auto j = all.to_json();
  EXPECT_DOUBLE_EQ(j["top1_over_median"].get<double>(), all.top(1) / all.median());
  EXPECT_TRUE(j["top_exact"].get<bool>());
  EXPECT_TRUE(std::isnan(AbsSummary().median()));
  EXPECT_TRUE(AbsSummary().to_json()["top1"].is_null());
}

TEST(AbsSummary, SelectionThresholdKeepsEveryTopCandidate) {
  std::vector<double> counts(kAbsHistogramBins, 0.0);
  counts[std::size_t(abs_histogram_bin(1.0f))] = 1000;
  counts[std::size_t(abs_histogram_bin(50.0f))] = 60;
  counts[std::size_t(abs_histogram_bin(70.0f))] = 50;
  // the top 100 lie in the two upper bins: the threshold is the lower edge of 50's bin
  EXPECT_EQ(selection_threshold(counts, 100, 0.0),
            abs_histogram_bin_lower(abs_histogram_bin(50.0f)));
  EXPECT_EQ(selection_threshold(counts, 100, 60.0), 60.0);  // a higher current threshold wins
  EXPECT_EQ(selection_threshold(counts, 2000, 0.5), 0.5);   // fewer values than asked: keep current
}

TEST(Spread, MeanStdAndRange) {
  const std::vector<double> v = {0.5, 0.7, 0.6};
  const Spread s = spread(v);
  EXPECT_NEAR(s.mean, 0.6, 1e-12);
  EXPECT_NEAR(s.std, 0.1, 1e-12);
  EXPECT_NEAR(s.range(), 0.2, 1e-12);
  EXPECT_EQ(spread(std::vector<double>{0.3}).std, 0.0);
}

// ---------------------------------------------------------------- needle generation

TEST(NeedleSample, KeysAreDistinctNumbersHaveTheirDigitsAndSamplesAreReproducible) {
  const auto& keys = builtin_needle_keys();
  EXPECT_EQ(keys.size(), 100u);
  EXPECT_EQ(std::set<std::string>(keys.begin(), keys.end()).size(), 100u);
  for (int i = 0; i < 50; ++i) {
    const NeedleSample s = make_needle_sample(keys, {6, 2}, 50, 512, 7, i, 42);
    EXPECT_EQ(std::set<std::string>(s.keys.begin(), s.keys.end()).size(), 6u);
    EXPECT_EQ(std::set<std::string>(s.numbers.begin(), s.numbers.end()).size(), 6u);
    for (const auto& n : s.numbers) {
      EXPECT_EQ(n.size(), 7u);
      EXPECT_NE(n[0], '0');
    }
    EXPECT_DOUBLE_EQ(s.depths[0], 0.5);
    const NeedleSample again = make_needle_sample(keys, {6, 2}, 50, 512, 7, i, 42);
    EXPECT_EQ(again.keys, s.keys);
    EXPECT_EQ(again.numbers, s.numbers);
  }
  EXPECT_NE(make_needle_sample(keys, {1, 1}, 0, 64, 7, 0, 1).numbers,
            make_needle_sample(keys, {1, 1}, 0, 64, 7, 0, 2).numbers);
  EXPECT_NE(error_of([&] {
              make_needle_sample(keys, {2, 3}, 0, 64, 7, 0, 1);
            }).find("R <= N"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              make_needle_sample(keys, {1, 1}, 101, 64, 7, 0, 1);
            }).find("depth"),
            std::string::npos);
}

TEST(NeedlePrompt, ExactLengthNeedlesAtTheirDepthAndTheAnswerFollowsTheQuery) {
  const auto& tok = testing::tiny_tokenizer();
  const auto sentences = testing::grammar_sentences(300, 7);
  for (int depth : {0, 25, 50, 75, 100}) {
    for (int length : {160, 256}) {
      const NeedleSample s =
          make_needle_sample(builtin_needle_keys(), {3, 2}, depth, length, 5, depth, 9);
      const NeedlePrompt p = build_needle_prompt(s, sentences, tok);
      std::size_t longest = 0;
      for (const auto& q : p.queries) longest = std::max(longest, q.size());
      EXPECT_EQ(int(p.context.size() + longest), length);
      EXPECT_EQ(p.context.front(), data::kEosId);
      // each needle's tokens decode to its sentence; spans do not overlap
      for (std::size_t k = 0; k < 3; ++k) {
        const auto [b, e] = p.spans[k];
        const std::vector<std::int32_t> ids(p.context.begin() + b, p.context.begin() + e);
        EXPECT_EQ(tok.decode(ids), fmt::format(" {}", needle_sentence(s.keys[k], s.numbers[k])));
      }
      // the answer needle sits at the last sentence boundary at or before its depth: the haystack
      // tokens before it are at most depth% of the haystack and less than one sentence short of it
      int before = 0;
      for (int t = 1; t < p.spans[0].first; ++t) {
        bool in_needle = false;
        for (const auto& sp : p.spans) in_needle |= t >= sp.first && t < sp.second;
        before += !in_needle;
      }
      const double target = depth / 100.0 * p.haystack_tokens;
      EXPECT_LE(before, target + 1e-9) << depth;
      EXPECT_GT(before, target - 40) << depth;  // a grammar sentence is far shorter than 40 tokens
      if (depth == 0) {
        EXPECT_EQ(p.spans[0].first, 1);
      }
      if (depth == 100) {
        EXPECT_EQ(p.spans[0].second + p.haystack_tokens - before, int(p.context.size()));
      }
      // query and answer: the prompt continues with the number
      EXPECT_EQ(tok.decode(p.queries[0]), fmt::format(" {}", needle_query(s.keys[0])));
      EXPECT_EQ(tok.decode(p.answers[0]), fmt::format(" {}", s.numbers[0]));
      EXPECT_EQ(first_digit_run(tok.decode(p.answers[1])), s.numbers[1]);
    }
  }
  const NeedleSample tight = make_needle_sample(builtin_needle_keys(), {4, 1}, 0, 40, 7, 0, 1);
  EXPECT_NE(error_of([&] { build_needle_prompt(tight, sentences, tok); }).find("cannot hold"),
            std::string::npos);
}

TEST(NeedleAnswer, FirstDigitRun) {
  EXPECT_EQ(first_digit_run(" 1234567. The"), "1234567");
  EXPECT_EQ(first_digit_run("is: 12 34"), "12");
  EXPECT_EQ(first_digit_run("none"), "");
}

// ---------------------------------------------------------------- ICL data

TEST(IclJsonl, ParsesSplitsAndRejectsBadLines) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 30; ++i) {
    text += fmt::format("{{\"text\": \"example {}\", \"label\": \"{}\"}}\n", i,
                        i % 3 == 0 ? "yes" : "no");
    if (i == 4) text += "\n";  // blank lines are skipped
  }
  write_file_atomic(dir / "ok.jsonl", text);
  const IclTask t = load_icl_jsonl(dir / "ok.jsonl", 6, 1);
  EXPECT_EQ(t.labels, (std::vector<std::string>{"no", "yes"}));
  EXPECT_EQ(t.test.size(), 6u);
  EXPECT_EQ(t.pool.size(), 24u);
  std::set<std::string> seen;
  for (const auto& e : t.test) seen.insert(e.text);
  for (const auto& e : t.pool)
    EXPECT_FALSE(seen.count(e.text)) << "test example in the pool: " << e.text;
  // balanced demonstrations: 4 shots over 2 labels -> 2 each, and reproducible
  const auto demos = pick_demonstrations(t, 4, 3);
  EXPECT_EQ(std::count_if(demos.begin(), demos.end(),
                          [](const IclExample& e) { return e.label == "yes"; }),
            2);
  EXPECT_EQ(pick_demonstrations(t, 4, 3)[0].text, demos[0].text);
  // errors name the file and line
  write_file_atomic(dir / "bad.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\n{not json}\n");
  EXPECT_NE(error_of([&] {
              load_icl_jsonl(dir / "bad.jsonl", 1, 1);
            }).find("bad.jsonl:2: not valid JSON"),
            std::string::npos);
  write_file_atomic(dir / "field.jsonl", "{\"text\": \"a\", \"lbl\": \"x\"}\n");
  EXPECT_NE(error_of([&] {
              load_icl_jsonl(dir / "field.jsonl", 1, 1);
            }).find("field.jsonl:1: needs string fields"),
            std::string::npos);
  write_file_atomic(dir / "one.jsonl",
                    "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": \"x\"}\n");
  EXPECT_NE(error_of([&] { load_icl_jsonl(dir / "one.jsonl", 1, 1); }).find("at least 2 labels"),
            std::string::npos);
  write_file_atomic(dir / "empty.jsonl", "{\"text\": \"\", \"label\": \"x\"}\n");
  EXPECT_NE(error_of([&] { load_icl_jsonl(dir / "empty.jsonl", 1, 1); }).find("must not be empty"),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_icl_jsonl(dir / "missing.jsonl", 1, 1); }).find("missing.jsonl"),
            std::string::npos);
}

TEST(IclPrompt, Format) {
  EXPECT_EQ(icl_format_demo({"a b", "x"}), "Input: a b\nLabel: x\n\n");
  EXPECT_EQ(icl_format_query("a b"), "Input: a b\nLabel:");
  EXPECT_EQ(icl_label_continuation("x"), " x");
}

// ---------------------------------------------------------------- images, results, text

TEST(Png, ValidStructureAndChecksums) {
  Image img(3, 2);
  img.at(0, 0) = {255, 0, 0};
  img.at(2, 1) = {1, 2, 3};
  const std::string png = encode_png(img);
  ASSERT_EQ(png.substr(0, 8), "\x89PNG\r\n\x1a\n");
  EXPECT_EQ(png.substr(12, 4), "IHDR");
  EXPECT_EQ(png.substr(png.size() - 8, 4), "IEND");
  // IDAT holds zlib of the raw rows: header 78 01, one stored block of 2 * (1 + 9) bytes
  const auto idat = png.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  EXPECT_EQ(png.substr(idat + 4, 2), std::string("\x78\x01"));
  EXPECT_EQ(static_cast<unsigned char>(png[idat + 7]), 20u);
  EXPECT_EQ(png.substr(idat + 11, 4), std::string("\0\xff\0\0", 4));  // filter 0, then red
  EXPECT_EQ(base64("Man"), "TWFu");
  EXPECT_EQ(base64("Ma"), "TWE=");
  EXPECT_EQ(base64("M"), "TQ==");
  EXPECT_EQ(rgb_hex(viridis_rgb(0)), "#440154");
  EXPECT_EQ(rgb_hex(diverging_rgb(0)), "#ffffff");
}

TEST(Results, WriteReadAndValidate) {
  TempDir dir;
  RunInfo info;
  info.task = "ppl";
  info.command = "difftx eval ppl --checkpoint x";
  const auto doc =
      make_results(info, {{"context", 8}}, {}, {{{"label", "m"}, {"results", {{"loss", 1.0}}}}});
  const std::filesystem::path file = write_results(dir / "sub", doc);
  EXPECT_EQ(read_results(file)["models"][0]["results"]["loss"], 1.0);
  EXPECT_EQ(find_results(dir.path), std::vector<std::filesystem::path>{file});
  std::filesystem::create_directories(dir / "bad");
  write_file_atomic(dir / "bad" / "results.json",
                    "{\"schema\": \"difftx-eval-results\", \"version\": 99}");
  EXPECT_NE(error_of([&] { read_results(dir / "bad" / "results.json"); }).find("version"),
            std::string::npos);
  write_file_atomic(dir / "bad" / "results.json", "not json");
  EXPECT_NE(error_of([&] { read_results(dir / "bad" / "results.json"); }).find("not valid JSON"),
            std::string::npos);
  auto broken = doc;
  broken["models"][0].erase("results");
  write_file_atomic(dir / "bad" / "results.json", broken.dump());
  EXPECT_NE(error_of([&] { read_results(dir / "bad" / "results.json"); }).find("models[0]"),
            std::string::npos);
  const char* argv[] = {"/build/difftx", "eval", "needle", "--prompt", "it's a test"};
  EXPECT_EQ(shell_command_line(5, argv), "difftx eval needle --prompt 'it'\\''s a test'");
}

TEST(Sentences, SplitAtSentenceEndsAndLines) {
  EXPECT_EQ(split_sentences("One. Two?  Three!\"\nFour  five\n\nSix."),
            (std::vector<std::string>{"One.", "Two?", "Three!\"", "Four five", "Six."}));
  EXPECT_EQ(split_sentences("Mr.Smith went. Done"),
            (std::vector<std::string>{"Mr.Smith went.", "Done"}));
}

}  // namespace
}  // namespace difftx::eval
