// Task data (`difftx data synth`): MQAR label positions and value ranges, distinct keys,
// power-law gaps within a stated tolerance, the longer test split, determinism under a seed;
// needle-mix placement, questions and the disjointness of test cities and numbers; ICL episodes
// with labels as the only targets; and each folder loading as a complete data folder.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "data_test_util.h"
#include "difftx/core/error.h"
#include "difftx/data/data_folder.h"
#include "difftx/data/loader.h"
#include "difftx/data/shard.h"
#include "difftx/data/symbol_tokenizer.h"
#include "difftx/data/synth_icl.h"
#include "difftx/data/synth_mqar.h"
#include "difftx/data/synth_needle.h"

namespace difftx::data {
namespace {

using nlohmann::json;
using test_util::TempDir;

// ---- MQAR ---------------------------------------------------------------------------------

void expect_valid_example(const MqarExample& ex, const MqarShape& s) {
  const int P = s.pairs, L = s.seq_len;
  const std::int32_t first_value = mqar_first_value(s.vocab_size);
  ASSERT_EQ(ex.tokens.size(), static_cast<std::size_t>(L + 1));
  std::set<std::int32_t> keys, values;
  std::map<std::int32_t, std::int32_t> pair;
  for (int i = 0; i < P; ++i) {
    const std::int32_t k = ex.tokens[2 * i], v = ex.tokens[2 * i + 1];
    ASSERT_GE(k, kFirstSymbolId);
    ASSERT_LT(k, first_value) << "keys come from the lower half";
    ASSERT_GE(v, first_value) << "values come from the upper half";
    ASSERT_LT(v, s.vocab_size);
    keys.insert(k);
    values.insert(v);
    pair[k] = v;
    ASSERT_EQ(ex.labels[2 * i], 0);
    ASSERT_EQ(ex.labels[2 * i + 1], 0) << "the context's values are not labelled";
  }
  ASSERT_EQ(keys.size(), static_cast<std::size_t>(P)) << "keys are distinct within an example";
  ASSERT_EQ(values.size(), static_cast<std::size_t>(P)) << "values are distinct within an example";
  int labelled = 0;
  for (std::size_t t = 0; t < ex.tokens.size(); ++t) {
    if (!ex.labels[t]) continue;
    ++labelled;
    ASSERT_GE(t, static_cast<std::size_t>(2 * P + 1));
    ASSERT_EQ((t - 2 * P) % 2, 1u) << "queries sit at even offsets after the context";
    const std::int32_t key = ex.tokens[t - 1];
    ASSERT_TRUE(pair.count(key)) << "a labelled value follows a key of the context";
    ASSERT_EQ(ex.tokens[t], pair[key]) << "the label is the value of the queried key";
  }
  ASSERT_EQ(labelled, P) << "one label per pair, nothing else";
  for (std::size_t t = 2 * P; t < ex.tokens.size(); ++t) {
    const bool query = ex.labels[t] || (t + 1 < ex.tokens.size() && ex.labels[t + 1]);
    if (query) continue;
    if (s.noise) {
      ASSERT_GE(ex.tokens[t], kFirstSymbolId) << "noise is drawn from the symbols";
    } else {
      ASSERT_EQ(ex.tokens[t], kPadId) << "filler is <pad> without noise";
    }
  }
}

TEST(DataSynthMqar, LabelPositionsValueRangesAndDistinctKeys) {
  for (bool noise : {false, true}) {
    MqarShape s;
    s.vocab_size = 1024;
    s.seq_len = 128;
    s.pairs = 16;
    s.noise = noise;
    Rng rng(3);
    for (int i = 0; i < 500; ++i) {
      const MqarExample ex = make_mqar_example(rng, s);
      expect_valid_example(ex, s);
      if (HasFatalFailure()) return;
    }
  }
}

TEST(DataSynthMqar, GapsFollowThePowerLawWithinFourStandardErrors) {
  // One pair: its gap is drawn exactly from p(g) = a (g + 1)^(a - 1) / Z over [0, 32).
  MqarShape s;
  s.vocab_size = 1024;
  s.seq_len = 66;
  s.pairs = 1;
  const int space = (s.seq_len - 2) / 2;
  const std::vector<double> p = mqar_gap_probabilities(space, s.power_a);
  const int n = 100000;
  std::vector<int> count(static_cast<std::size_t>(space), 0);
  Rng rng(11);
  for (int i = 0; i < n; ++i) ++count[static_cast<std::size_t>(make_mqar_example(rng, s).gaps[0])];
  for (int g = 0; g < space; ++g) {
    const double f = static_cast<double>(count[static_cast<std::size_t>(g)]) / n;
    const double se =
        std::sqrt(p[static_cast<std::size_t>(g)] * (1 - p[static_cast<std::size_t>(g)]) / n);
    EXPECT_NEAR(f, p[static_cast<std::size_t>(g)], 4 * se) << "gap " << g;
  }
  // The law itself: short gaps are the most likely, p(0) / p(1) = 2^(1 - a).
  EXPECT_NEAR(p[0] / p[1], std::pow(2.0, 1 - s.power_a), 1e-12);
  // With many pairs (without replacement) short gaps still come first.
  s.seq_len = 256;
  s.pairs = 16;
  std::vector<int> many(static_cast<std::size_t>((256 - 32) / 2), 0);
  for (int i = 0; i < 4000; ++i) {
    for (int g : make_mqar_example(rng, s).gaps) ++many[static_cast<std::size_t>(g)];
  }
  EXPECT_GT(many[0], many[20]);
  EXPECT_GT(many[20], many[100]);
}

TEST(DataSynthMqar, FolderIsDeterministicCompleteAndHasALongerTestSplit) {
  TempDir tmp;
  MqarOptions o;
  o.train.vocab_size = 1024;
  o.train.seq_len = 64;
  o.train.pairs = 8;
  o.train.noise = true;
  o.train_examples = 300;
  o.val_examples = 40;
  o.test_examples = 30;
  o.progress = ProgressMode::quiet;
  o.out_dir = tmp / "a";
  write_mqar(o);
  o.out_dir = tmp / "b";
  write_mqar(o);
  EXPECT_EQ(test_util::folder_digest(tmp / "a"), test_util::folder_digest(tmp / "b"))
      << "the same seed must give the same folder";
  o.seed = 2;
  o.out_dir = tmp / "c";
  write_mqar(o);
  EXPECT_NE(test_util::folder_digest(tmp / "a"), test_util::folder_digest(tmp / "c"));

  // A complete data folder: tokenizer (symbols) of the shards' vocabulary, three splits.
  const DataFolderInfo info = check_data_folder(tmp / "a");
  EXPECT_TRUE(info.has_tokenizer);
  EXPECT_EQ(info.vocab_size, 1024u);
  const Tokenizer tok = Tokenizer::load(tmp / "a" / "tokenizer.model");
  EXPECT_EQ(tok.vocab_size(), 1024);
  EXPECT_EQ(tok.decode(std::vector<std::int32_t>{600, 700}), " s600 s700");
  ShardReader test(tmp / "a" / "test-00000.tokens");
  EXPECT_EQ(test.record_tokens(), 129u) << "the test split is twice as long";
  MqarShape test_shape = o.train;
  test_shape.seq_len = 128;
  test_shape.pairs = 16;
  MqarExample ex;
  ex.tokens.resize(129);
  ex.labels.resize(129);
  test.copy(0, 129, ex.tokens.data());
  test.copy_labels(0, 129, ex.labels.data());
  expect_valid_example(ex, test_shape);

  // The loaders give whole examples with the value positions as the only targets.
  LoaderOptions lo;
  lo.path = tmp / "a";
  lo.seq_len = 64;
  lo.batch_size = 4;
  TrainLoader train(lo);
  const Batch b = train.next_batch();
  EXPECT_EQ(b.counted_targets(), 4u * 8u);
  const auto labels = b.labels();
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= 0) {
      EXPECT_GE(labels[i], 512) << "labels are values";
    }
  }
  lo.split = "test";
  lo.seq_len = 128;
  EvalLoader eval(lo);
  EXPECT_EQ(eval.total_targets(), 30u * 16u);

  // Impossible shapes are refused with the rule.
  o.train.pairs = 20;
  o.out_dir = tmp / "d";
  try {
    write_mqar(o);
    FAIL() << "20 pairs in 64 tokens accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("4 x pairs <= length"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp / "d" / "meta.json"));
}

// ---- needle-mix ---------------------------------------------------------------------------

// Text documents of capitalised sentences (so sentence ends are clear).
void write_sentence_corpus(const fs::path& dir, int files) {
  const char* words[] = {"alpha", "beta",  "gamma",  "delta", "river",  "stone",  "light",
                         "north", "quiet", "market", "story", "winter", "garden", "signal"};
  std::uint64_t x = 5;
  for (int f = 0; f < files; ++f) {
    std::string text;
    for (int s = 0; s < 120; ++s) {
      std::string sentence;
      for (int w = 0; w < 8; ++w) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        if (w > 0) sentence += ' ';
        sentence += words[(x >> 33) % 14];
      }
      sentence[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(sentence[0])));
      text += sentence + (s % 6 == 5 ? ".\n\n" : ". ");
    }
    test_util::write_text(dir / fmt::format("doc{:02}.txt", f), text);
  }
}

TEST(DataSynthNeedle, PlacementQuestionsAndDisjointTestKeys) {
  TempDir tmp;
  write_sentence_corpus(tmp / "text", 20);
  NeedleMixOptions o;
  o.inputs = {tmp / "text"};
  o.vocab_size = 400;
  o.context = 256;
  o.max_needles = 3;
  o.needle_fraction = 0.5;
  o.test_documents = 40;
  o.test_cities = 20;
  o.test_numbers = 500;
  o.val_fraction = 0.2;
  o.progress = ProgressMode::quiet;
  o.out_dir = tmp / "nm";
  const NeedleMixSummary s = write_needle_mix(o);
  EXPECT_EQ(s.test_documents, 40u);
  EXPECT_NEAR(
      static_cast<double>(s.train_needle_documents) / static_cast<double>(s.train_documents), 0.5,
      0.15);
  const json needles = json::parse(read_file_text(tmp / "nm" / "needles.json"));
  const auto train_cities = needles["train_cities"].get<std::set<std::string>>();
  const auto test_cities = needles["test_cities"].get<std::set<std::string>>();
  std::set<std::string> test_numbers;
  for (const auto& n : needles["test_numbers"])
    test_numbers.insert(std::to_string(n.get<std::uint64_t>()));
  EXPECT_EQ(test_cities.size(), 20u);
  EXPECT_EQ(train_cities.size(), 80u);
  for (const auto& c : test_cities) EXPECT_FALSE(train_cities.count(c)) << c;

  const Tokenizer tok = Tokenizer::load(tmp / "nm" / "tokenizer.model");
  const std::regex needle(R"(The special magic (\w+) number is: (\d+)\.)");
  // Training and validation: training cities, numbers outside the test set, each needle
  // asked at the end of its document, needles at sentence starts.
  for (const char* split : {"train-00000.tokens", "val-00000.tokens"}) {
    std::vector<std::int32_t> doc;
    int docs_with_needles = 0;
    for (std::int32_t id : ShardReader(tmp / "nm" / split).read_all()) {
      if (id != kEosId) {
        doc.push_back(id);
        continue;
      }
      const std::string text = tok.decode(doc);
      doc.clear();
      // The questions are the last paragraph, needle lines only (a needle may also open a
      // paragraph of the body).
      std::size_t questions = text.rfind("\n\n");
      if (questions != std::string::npos) {
        std::istringstream last(text.substr(questions + 2));
        for (std::string q; std::getline(last, q);) {
          if (!std::regex_match(q, needle)) questions = std::string::npos;
        }
      }
      const std::string body = questions == std::string::npos ? text : text.substr(0, questions);
      std::map<std::string, std::string> inserted;
      for (std::sregex_iterator it(body.begin(), body.end(), needle), end; it != end; ++it) {
        const std::string city = (*it)[1], number = (*it)[2];
        EXPECT_TRUE(train_cities.count(city)) << split << ": " << city;
        EXPECT_FALSE(test_numbers.count(number)) << split << ": " << number;
        EXPECT_EQ(number.size(), 5u);
        const auto at = static_cast<std::size_t>(it->position());
        EXPECT_TRUE(at == 0 || body.compare(at - 2, 2, ". ") == 0 || body[at - 1] == '\n')
            << "a needle starts a sentence: ..." << body.substr(at > 30 ? at - 30 : 0, 60);
        inserted[city] = number;
      }
      EXPECT_LE(inserted.size(), 3u);
      if (inserted.empty()) {
        EXPECT_EQ(questions, std::string::npos) << "no needle, no question";
        continue;
      }
      ++docs_with_needles;
      ASSERT_NE(questions, std::string::npos) << text;
      const std::string tail = text.substr(questions);
      std::map<std::string, std::string> asked;
      for (std::sregex_iterator it(tail.begin(), tail.end(), needle), end; it != end; ++it) {
        asked[(*it)[1]] = (*it)[2];
      }
      EXPECT_EQ(asked, inserted) << "every needle is asked, with its number";
    }
    EXPECT_GT(docs_with_needles, 0) << split;
  }
  // Test: held-out cities and numbers only; the context ends with the question, the answer
  // is the number of that city's needle, the recorded depth is where the needle is.
  int lines = 0;
  std::istringstream jsonl(read_file_text(tmp / "nm" / "needle-test.jsonl"));
  for (std::string line; std::getline(jsonl, line); ++lines) {
    const json t = json::parse(line);
    const std::string context = t["context"], city = t["city"], answer = t["answer"];
    EXPECT_TRUE(test_cities.count(city)) << city;
    EXPECT_TRUE(test_numbers.count(answer)) << answer;
    const std::string question = "The special magic " + city + " number is:";
    ASSERT_GE(context.size(), question.size());
    EXPECT_EQ(context.substr(context.size() - question.size()), question);
    const std::string needle_text = question + " " + answer + ".";
    const std::size_t at = context.find(needle_text);
    ASSERT_NE(at, std::string::npos) << "the answer's needle is in the context";
    const std::size_t body = context.rfind("\n\n");
    EXPECT_NEAR(t["depth"].get<double>(), static_cast<double>(at) / static_cast<double>(body),
                1e-9);
    EXPECT_EQ(t["needles"].size(), 3u);
    for (const auto& n : t["needles"]) {
      EXPECT_TRUE(test_cities.count(n["city"].get<std::string>()));
      EXPECT_TRUE(test_numbers.count(n["number"].get<std::string>()));
    }
  }
  EXPECT_EQ(lines, 40);
  EXPECT_NO_THROW(check_data_folder(tmp / "nm"));
}

// ---- ICL ----------------------------------------------------------------------------------

TEST(DataSynthIcl, EpisodesLabelOnlyTheGenres) {
  TempDir tmp;
  test_util::small_brown_tokenizer().save(tmp / "tok.model");
  IclOptions o;
  o.brown_dir = test_util::brown_dir_or_fail();
  o.tokenizer = tmp / "tok.model";
  o.context = 128;
  o.train_episodes = 60;
  o.val_episodes = 10;
  o.test_episodes = 10;
  o.progress = ProgressMode::quiet;
  o.out_dir = tmp / "icl";
  const IclSummary s = write_icl(o);
  EXPECT_GT(s.mean_demonstrations, 1.0);
  const json task = json::parse(read_file_text(tmp / "icl" / "icl" / "task.json"));
  const auto labels = task["labels"].get<std::set<std::string>>();
  EXPECT_EQ(labels.size(), 15u);
  const Tokenizer tok = Tokenizer::load(tmp / "icl" / "tokenizer.model");
  for (const char* split : {"train-00000.tokens", "test-00000.tokens"}) {
    ShardReader r(tmp / "icl" / split);
    ASSERT_EQ(r.record_tokens(), 129u);
    ASSERT_TRUE(r.has_label_mask());
    for (std::uint64_t e = 0; e < r.header().document_count; ++e) {
      std::vector<std::int32_t> ids(129);
      std::vector<std::uint8_t> mask(129);
      r.copy(e * 129, 129, ids.data());
      r.copy_labels(e * 129, 129, mask.data());
      // Every labelled span decodes to " <label>" and follows "Genre:".
      int spans = 0;
      for (std::size_t t = 0; t < ids.size();) {
        if (!mask[t]) {
          ++t;
          continue;
        }
        std::size_t end = t;
        while (end < ids.size() && mask[end]) ++end;
        const std::string label =
            tok.decode(std::vector<std::int32_t>(ids.begin() + t, ids.begin() + end));
        ASSERT_EQ(label[0], ' ') << label;
        EXPECT_TRUE(labels.count(label.substr(1))) << label;
        const std::string before =
            tok.decode(std::vector<std::int32_t>(ids.begin(), ids.begin() + t));
        EXPECT_EQ(before.substr(before.size() - 7), "\nGenre:");
        ++spans;
        t = end;
      }
      EXPECT_GE(spans, 1);
      // Padding after the last demonstration is masked.
      for (std::size_t t = 0; t < ids.size(); ++t) {
        if (ids[t] == kPadId) {
          EXPECT_EQ(mask[t], 0);
        }
      }
    }
  }
  // Pools for the evaluator: labelled sentences, the test pool from held-out documents.
  std::istringstream test(read_file_text(tmp / "icl" / "icl" / "test.jsonl"));
  std::string line;
  ASSERT_TRUE(std::getline(test, line));
  const json first = json::parse(line);
  EXPECT_TRUE(labels.count(first["label"].get<std::string>()));
  EXPECT_EQ(icl_example_text("x", "news"), "Sentence: x\nGenre: news");
  EXPECT_NO_THROW(check_data_folder(tmp / "icl"));
}

}  // namespace
}  // namespace difftx::data
