// `difftx eval` end to end on the CPU: every task on two tiny checkpoints (DIFF V1 and its matched
// softmax baseline) writes a results.json with both models; results are deterministic under
// --seed; `difftx eval report` renders them into one page that headless Chromium parses with every
// figure present (and screenshots); bad input of each kind ends with one error line and exit 1.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <regex>

#include "difftx/core/atomic_file.h"
#include "difftx/eval/results.h"
#include "eval_test_util.h"
#include "train/train_test_util.h"

namespace difftx::eval {
namespace {
namespace fs = std::filesystem;
using difftx::testing::run_command;
using nlohmann::json;

// Prepared text (a grammar with numbers) and two random-weight checkpoints, made once.
struct Fixture {
  fs::path root, data, diff, base;
};

const Fixture& fixture() {
  static const Fixture f = [] {
    Fixture x;
    x.root = fs::temp_directory_path() / ("difftx_eval_cli_" + std::to_string(::getpid()));
    fs::remove_all(x.root);
    fs::create_directories(x.root / "text");
    const auto sentences = testing::grammar_sentences(2400, 11);
    for (int doc = 0; doc < 12; ++doc) {
      std::ofstream out(x.root / "text" / fmt::format("doc{:02}.txt", doc));
      for (int s = 0; s < 200; ++s) {
        out << sentences[std::size_t(doc * 200 + s)] << (s % 9 == 8 ? "\n" : " ");
        if (s % 50 == 7) out << "The special magic Oslo number is: " << 1000 + doc * 31 + s << ". ";
      }
    }
    x.data = x.root / "prepared";
    auto r = run_command(difftx::testing::cli() + " data prepare --input " +
                         (x.root / "text").string() + " --out " + x.data.string() +
                         " --vocab-size 384 --val-fraction 0.25 --progress none");
    if (r.status != 0) throw std::runtime_error("data prepare failed: " + r.output);
    const data::Tokenizer tok = data::Tokenizer::load(x.data / "tokenizer.model");
    ModelConfig diff = testing::tiny_eval_config(AttentionKind::diff_v1, false, tok.vocab_size());
    x.diff = x.root / "diff";
    x.base = x.root / "baseline";
    for (const auto& [dir, cfg] :
         {std::pair{x.diff, diff}, std::pair{x.base, matched_baseline(diff)}}) {
      const json run = {{"model", cfg.to_json()}, {"data", {{"path", x.data.string()}}}};
      save_model_checkpoint(dir, run, cfg, ParamSet::initialised(cfg, 5, DType::f32, Device::cpu),
                            x.data / "tokenizer.model", 0);
    }
    return x;
  }();
  return f;
}

std::string cli() {
  return difftx::testing::cli();
}

std::string models_args() {
  return " --checkpoint " + fixture().diff.string() + " --checkpoint " + fixture().base.string();
}

// The task commands of the suite, small enough for CI.
const std::vector<std::pair<std::string, std::string>>& task_args() {
  static const std::vector<std::pair<std::string, std::string>> t = {
      {"ppl", "--context 64 --stride 32 --max-tokens 3000"},
      {"outliers", "--tokens 2000 --context 128"},
      {"quant-logits",
       "--tokens 600 --context 128 --bits 16,8,4 --task needle --needles 1:1 --depths 0,100 "
       "--samples 1 "
       "--lengths 200 --digits 4"},
      {"needle", "--needles 1:1,2:2 --depths 0,50,100 --samples 1 --lengths 200,240 --digits 4"},
      {"icl", "--shots 0,2,4 --permutations 3 --icl-test 12 --icl-classes 3"},
      {"attention-map",
       "--prompt 'The cat sees the house. A dog likes the river.' --layer 1 --head 0"}};
  return t;
}

json run_task(const std::string& task, const std::string& args, const fs::path& out, int seed = 1) {
  const std::string cmd = cli() + " eval " + task + models_args() + " " + args + " --out " +
                          out.string() + " --seed " + std::to_string(seed) + " --progress none";
  auto r = run_command(cmd);
  EXPECT_EQ(r.status, 0) << cmd << "\n" << r.output;
  return read_results(out / "results.json");
}

// Every task's results for both models, in <root>/run1 (shared by the report tests).
const fs::path& first_run() {
  static const fs::path dir = [] {
    const fs::path d = fixture().root / "run1";
    for (const auto& [task, args] : task_args()) run_task(task, args, d / task);
    return d;
  }();
  return dir;
}

TEST(EvalCli, EveryTaskWritesResultsForEveryModel) {
  for (const auto& [task, args] : task_args()) {
    SCOPED_TRACE(task);
    const json j = read_results(first_run() / task / "results.json");
    EXPECT_EQ(j["task"], task);
    ASSERT_EQ(j["models"].size(), 2u);
    EXPECT_EQ(j["models"][0]["attention"], "diff_v1");
    EXPECT_EQ(j["models"][1]["attention"], "softmax");
    EXPECT_NE(j["command"].get<std::string>().find("difftx eval " + task), std::string::npos);
    for (const auto& m : j["models"]) {
      const json& r = m["results"];
      if (task == "ppl") {
        EXPECT_GT(r["loss"].get<double>(), 0.0);
        EXPECT_NEAR(r["perplexity"].get<double>(), std::exp(r["loss"].get<double>()), 1e-9);
        EXPECT_GT(r["bits_per_byte"].get<double>(), 0.0);
        EXPECT_TRUE(r["from_shards"].get<bool>());
        EXPECT_EQ(r["cumulative"]["position"].back(), 63);
      } else if (task == "outliers") {
        EXPECT_EQ(r["tokens"], 2000);
        EXPECT_EQ(r["per_layer"].size(), 2u);
        EXPECT_GE(r["logits"]["top1"].get<double>(), r["logits"]["top100"].get<double>());
        EXPECT_GT(r["hidden"]["median"].get<double>(), 0.0);
      } else if (task == "quant-logits") {
        ASSERT_EQ(r["points"].size(), 3u);
        EXPECT_EQ(r["points"][0]["bits"], 16);
        EXPECT_NEAR(r["points"][0]["loss"].get<double>(), r["fused_loss"].get<double>(), 1e-4);
        EXPECT_EQ(r["points"][0]["kl"], 0.0);
        EXPECT_GT(r["points"][2]["kl"].get<double>(), 0.0);
        EXPECT_EQ(r["needle"].size(), 3u);
      } else if (task == "needle") {
        EXPECT_EQ(r["cells"].size(), 2u * 3u * 2u);
        EXPECT_EQ(r["examples"].size(), 2u * 3u * 2u);
        EXPECT_EQ(r["allocation"].size(), 2u * 3u);
        EXPECT_EQ(r["by_config"].size(), 2u);
      } else if (task == "icl") {
        ASSERT_EQ(r["points"].size(), 3u);
        EXPECT_EQ(r["points"][2]["accuracies"].size(), 3u);  // 3 orders of 4 demonstrations
        EXPECT_EQ(r["labels"].size(), 3u);
      } else if (task == "attention-map") {
        EXPECT_EQ(r["images"].size(), m["attention"] == "diff_v1" ? 3u : 1u);
        for (const auto& img : r["images"])
          EXPECT_TRUE(fs::exists(first_run() / task / img["png"].get<std::string>()));
      }
    }
  }
}

TEST(EvalCli, ResultsAreDeterministicUnderTheSeed) {
  const fs::path a = fixture().root / "det-a", b = fixture().root / "det-b",
                 c = fixture().root / "det-c";
  const std::vector<std::pair<std::string, std::string>> small = {
      {"needle", "--needles 2:2 --depths 0,100 --samples 1 --lengths 200 --digits 4"},
      {"icl", "--shots 2 --permutations 2 --icl-test 6 --icl-classes 3"},
      {"outliers", "--tokens 1000 --context 128"},
      {"quant-logits", "--tokens 300 --context 128 --bits 16,4"}};
  for (const auto& [task, args] : small) {
    const json x = run_task(task, args, a / task, 7), y = run_task(task, args, b / task, 7);
    ASSERT_EQ(x["models"].size(), y["models"].size());
    for (std::size_t i = 0; i < x["models"].size(); ++i) {
      EXPECT_EQ(x["models"][i]["results"], y["models"][i]["results"]) << task;
    }
  }
  // another seed draws other needles
  const json n7 = read_results(a / "needle" / "results.json");
  const json n8 = run_task("needle", small[0].second, c / "needle", 8);
  EXPECT_NE(n7["models"][0]["results"]["examples"], n8["models"][0]["results"]["examples"]);
}

// ---------------------------------------------------------------- the report in Chromium

constexpr const char* kChromium = "/usr/bin/chromium";

int chromium(const fs::path& profile, const std::string& args, const fs::path& out) {
  const std::string cmd = fmt::format(
      "timeout 90 {} --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
      "--disable-background-networking --disable-component-update --disable-sync --hide-scrollbars "
      "--user-data-dir='{}' {} > '{}' 2> '{}.log'",
      kChromium, profile.string(), args, out.string(), out.string());
  return std::system(cmd.c_str());
}

std::size_t count_of(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

TEST(EvalReport, RendersEveryFigureInHeadlessChromium) {
  ASSERT_TRUE(fs::exists(kChromium)) << kChromium << " is missing: run scripts/install-deps.sh";
  const fs::path dir = first_run();
  auto r = run_command(cli() + " eval report " + dir.string());
  ASSERT_EQ(r.status, 0) << r.output;
  const fs::path html = dir / "report.html";
  const std::string page = read_file_text(html);
  // self-contained: nothing fetched (SVG namespace names are identifiers, not fetched)
  for (const char* ref : {"src=\"http", "href=\"http", "url(http", "@import", "<script", "<link"}) {
    EXPECT_EQ(page.find(ref), std::string::npos) << ref;
  }
  // the DOM as Chromium parsed it
  const fs::path dom = dir / "dom.html";
  ASSERT_EQ(chromium(dir / "profile-dom", "--dump-dom 'file://" + html.string() + "'", dom), 0)
      << read_file_text(dom.string() + ".log");
  const std::string parsed = read_file_text(dom);
  for (const char* id : {"ppl-cumulative", "ppl-buckets", "outliers-layers", "quant-loss",
                         "quant-kl", "quant-needle", "needle-allocation", "icl-accuracy"}) {
    EXPECT_NE(parsed.find(fmt::format("id=\"{}", id)), std::string::npos) << id;
  }
  for (const char* label : {"diff_v1 diff", "softmax baseline"}) {
    EXPECT_NE(parsed.find(fmt::format("data-series=\"{} cumulative\"", label)), std::string::npos)
        << label;
    EXPECT_NE(parsed.find(fmt::format("data-heatmap=\"{} N=2 R=2\"", label)), std::string::npos)
        << label;
    EXPECT_NE(parsed.find(fmt::format("data-series=\"{} mean\"", label)), std::string::npos)
        << label;
    EXPECT_NE(parsed.find(fmt::format("data-series=\"{} loss\"", label)), std::string::npos)
        << label;
  }
  for (const char* map :
       {"diff_v1 diff A1", "diff_v1 diff A2", "diff_v1 diff diff", "softmax baseline softmax"}) {
    EXPECT_NE(parsed.find(fmt::format("data-map=\"{}\"", map)), std::string::npos) << map;
  }
  EXPECT_EQ(count_of(parsed, "data-heatmap="), 4u);  // 2 models x 2 (N, R)
  EXPECT_EQ(count_of(parsed, "data:image/png;base64,"), 4u);
  for (const char* table : {"models-table", "ppl-table", "outliers-table", "quant-table",
                            "needle-table", "allocation-table", "icl-table", "commands-list"}) {
    EXPECT_NE(parsed.find(fmt::format("id=\"{}\"", table)), std::string::npos) << table;
  }
  const std::string commands = parsed.substr(parsed.find("id=\"commands-list\""));
  for (const auto& [task, args] : task_args()) {
    EXPECT_NE(commands.find("difftx eval " + task + " --checkpoint"), std::string::npos) << task;
  }
  EXPECT_NE(commands.find("difftx eval report"), std::string::npos);
  // a screenshot: a real image of the requested size
  const fs::path png = dir / "report.png";
  ASSERT_EQ(chromium(dir / "profile-shot",
                     "--window-size=1200,2400 --screenshot='" + png.string() + "' 'file://" +
                         html.string() + "'",
                     dir / "shot.out"),
            0);
  const std::string bytes = read_file_text(png);
  EXPECT_GT(bytes.size(), 60u * 1024u) << "screenshot suspiciously small: a blank page?";
  // keep the sample: <build>/test-artifacts/eval/report.{html,png}
  const fs::path keep = fs::path(DIFFTX_BINARY_DIR) / "test-artifacts" / "eval";
  std::error_code ec;
  fs::create_directories(keep, ec);
  fs::copy_file(html, keep / "report.html", fs::copy_options::overwrite_existing, ec);
  fs::copy_file(png, keep / "report.png", fs::copy_options::overwrite_existing, ec);
}

// ---------------------------------------------------------------- bad input

// Runs a command that must fail: exit 1 and exactly one line "difftx: error: ..." containing
// `what`.
void expect_one_error_line(const std::string& args, const std::string& what) {
  auto r = run_command(cli() + " " + args);
  EXPECT_EQ(r.status, 1) << args << "\n" << r.output;
  std::string out = r.output;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  EXPECT_EQ(out.find('\n'), std::string::npos) << args << ": more than one line:\n" << r.output;
  EXPECT_EQ(out.rfind("difftx: error: ", 0), 0u) << args << "\n" << r.output;
  EXPECT_NE(out.find(what), std::string::npos) << args << ": expected '" << what << "' in:\n"
                                               << r.output;
}

TEST(EvalCli, BadInputGetsOneClearErrorLine) {
  const Fixture& f = fixture();
  const fs::path bad = f.root / "bad";
  fs::create_directories(bad / "empty");
  const std::string one =
      " --checkpoint " + f.diff.string() + " --progress none --out " + (bad / "out").string();
  const std::string data = " --data " + f.data.string();
  // checkpoints
  expect_one_error_line("eval ppl --checkpoint " + (bad / "nope").string() + data,
                        "does not exist");
  expect_one_error_line("eval ppl --checkpoint " + (bad / "empty").string() + data,
                        "neither model.safetensors");
  fs::create_directories(bad / "broken");
  fs::copy_file(f.diff / "config.json", bad / "broken" / "config.json",
                fs::copy_options::overwrite_existing);
  fs::copy_file(f.diff / "tokenizer.model", bad / "broken" / "tokenizer.model",
                fs::copy_options::overwrite_existing);
  write_file_atomic(bad / "broken" / "model.safetensors", std::string(100, 'x'));
  expect_one_error_line("eval ppl --checkpoint " + (bad / "broken").string() + data,
                        "model.safetensors");
  // held-out text
  expect_one_error_line("eval ppl" + one + " --data " + (bad / "nodata").string(),
                        "is not a folder");
  expect_one_error_line("eval ppl" + one + " --data " + (bad / "empty").string(),
                        "tokenizer.model");
  write_file_atomic(bad / "latin1.txt", std::string("caf\xe9 au lait\n"));
  expect_one_error_line("eval ppl" + one + " --text " + (bad / "latin1.txt").string(),
                        "latin1.txt");
  expect_one_error_line("eval ppl" + one + data + " --text " + (bad / "latin1.txt").string(),
                        "not both");
  // task options
  expect_one_error_line("eval ppl" + one + data + " --context 100000", "--context");
  expect_one_error_line("eval ppl" + one + data + " --context 64 --stride 65", "--stride");
  expect_one_error_line("eval needle" + one + data + " --needles 2:3", "R <= N");
  expect_one_error_line("eval needle" + one + data + " --needles abc", "not N:R");
  expect_one_error_line("eval needle" + one + data + " --depths 0,200", "outside [0, 100]");
  expect_one_error_line("eval needle" + one + data + " --depths 0,x", "not an integer");
  expect_one_error_line("eval needle" + one + data + " --lengths 9999", "room for the answer");
  expect_one_error_line("eval needle" + one + data + " --lengths 40 --needles 6:2", "cannot hold");
  expect_one_error_line("eval needle" + one + data + " --digits 0", "--digits");
  expect_one_error_line("eval needle" + one + data + " --keys " + (bad / "nokeys.txt").string(),
                        "nokeys.txt");
  expect_one_error_line("eval quant-logits" + one + data + " --bits 1", "--bits");
  expect_one_error_line("eval quant-logits" + one + data + " --bits 16,17", "--bits");
  expect_one_error_line("eval quant-logits" + one + data + " --task icl", "--task");
  expect_one_error_line("eval icl" + one + data + " --shots 2,-1", "--shots");
  expect_one_error_line("eval icl" + one + data + " --permutations 0", "--permutations");
  expect_one_error_line("eval icl" + one + data + " --icl-classes 40", "--icl-classes");
  write_file_atomic(bad / "bad.jsonl", "{\"text\": \"a\", \"label\": \"x\"}\n[1, 2]\n");
  expect_one_error_line("eval icl" + one + " --jsonl " + (bad / "bad.jsonl").string(),
                        "bad.jsonl:2");
  expect_one_error_line("eval attention-map" + one + " --prompt hello --layer 9", "--layer 9");
  expect_one_error_line("eval attention-map" + one + " --prompt hello --head 9", "--head 9");
  expect_one_error_line("eval attention-map" + one + " --prompt ''", "--prompt");
  expect_one_error_line("eval ppl --checkpoint " + f.diff.string() + data + " --progress loud",
                        "--progress");
  expect_one_error_line("eval ppl" + one + data + " --device tpu", "unknown device");
  // report
  expect_one_error_line("eval report " + (bad / "empty").string(), "holds no results.json");
  fs::create_directories(bad / "rep");
  write_file_atomic(bad / "rep" / "results.json", "{\"schema\": \"other\"}");
  expect_one_error_line("eval report " + (bad / "rep").string(), "schema");
}

}  // namespace
}  // namespace difftx::eval
