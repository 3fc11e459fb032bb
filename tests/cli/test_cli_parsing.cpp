// The CLI's promise for bad arguments: one line `difftx: error: ...` naming the problem and
// exit status 1 (never CLI11's own messages and codes 104/106/114); --help and --version exit
// 0; a repeated option takes its last value; integers out of range are refused, not wrapped.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "train/train_test_util.h"

namespace difftx::testing {
namespace {

// The command's output must be exactly one line starting with "difftx: error: ".
void expect_one_error_line(const CommandResult& r, const std::string& must_contain) {
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_EQ(r.output.rfind("difftx: error: ", 0), 0u) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  EXPECT_NE(r.output.find(must_contain), std::string::npos) << r.output;
}

TEST(CliParsing, UnknownCommandIsNamedAndTheCommandsListed) {
  auto r = run_command(cli() + " bogus");
  expect_one_error_line(r, "unknown command 'bogus'");
  for (const char* c :
       {"train", "generate", "compare", "report", "model", "data", "export", "import"}) {
    EXPECT_NE(r.output.find(c), std::string::npos) << c << ": " << r.output;
  }
  expect_one_error_line(run_command(cli() + " model bogus"),
                        "unknown command 'bogus' for `difftx model`");
  expect_one_error_line(run_command(cli()), "no command given");
  expect_one_error_line(run_command(cli() + " export"), "`difftx export` needs a command: hf");
}

TEST(CliParsing, ParseErrorsAreOneLineWithExitStatusOne) {
  expect_one_error_line(run_command(cli() + " train"), "--config is required");
  expect_one_error_line(run_command(cli() + " train --config x.json --no-such-option"),
                        "--no-such-option");
  expect_one_error_line(
      run_command(cli() + " generate --checkpoint x --prompt a --temperature warm"),
      "--temperature");
  expect_one_error_line(run_command(cli() + " export hf --checkpoint x --out y --dtype f8"),
                        "--dtype");
  expect_one_error_line(run_command(cli() + " generate --checkpoint x --prompt a --prompt-file b"),
                        "--prompt");
}

TEST(CliParsing, IntegersOutOfRangeAreRefusedNotWrapped) {
  const std::string gen = cli() + " generate --checkpoint /nonexistent --prompt a ";
  expect_one_error_line(run_command(gen + "--seed -1"), "--seed: '-1' is not a whole number >= 0");
  expect_one_error_line(run_command(gen + "--seed 18446744073709551616"),
                        "--seed: 18446744073709551616 is out of range");
  expect_one_error_line(run_command(gen + "--max-tokens 99999999999"), "--max-tokens");
  expect_one_error_line(run_command(gen + "--max-tokens -3"),
                        "--max-tokens: must be at least 0, got -3");
  expect_one_error_line(run_command(gen + "--samples 0"), "--samples: must be at least 1, got 0");
  expect_one_error_line(run_command(gen + "--top-k 1.5"), "--top-k: '1.5' is not a whole number");
  // The largest seed is valid: the error is then about the missing checkpoint.
  expect_one_error_line(run_command(gen + "--seed 18446744073709551615"), "/nonexistent");
}

TEST(CliParsing, StepsAndStopAfterBelowOneAreRefused) {
  const std::string train = cli() + " train --config configs/tiny.json ";
  expect_one_error_line(run_command(train + "--steps 0"), "--steps: must be at least 1, got 0");
  expect_one_error_line(run_command(train + "--steps -5"), "--steps: must be at least 1, got -5");
  expect_one_error_line(run_command(train + "--stop-after 0"),
                        "--stop-after: must be at least 1, got 0");
  expect_one_error_line(run_command(cli() + " compare --config configs/tiny.json --steps 0"),
                        "--steps: must be at least 1, got 0");
}

TEST(CliParsing, ARepeatedOptionTakesTheLastValue) {
  const std::string root = DIFFTX_SOURCE_DIR;
  auto r = run_command(cli() + " model info --config /nonexistent.json --config " + root +
                       "/configs/tiny.json");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("diff_v1"), std::string::npos) << r.output;
  r = run_command(cli() + " model info --config " + root +
                  "/configs/tiny.json --config /nonexistent.json");
  expect_one_error_line(r, "/nonexistent.json");
}

TEST(CliParsing, HelpAndVersionExitZero) {
  for (const char* args :
       {" --help", " train --help", " generate --help", " report --help", " model match --help"}) {
    auto r = run_command(cli() + args);
    EXPECT_EQ(r.status, 0) << args << ": " << r.output;
    EXPECT_NE(r.output.find("Usage"), std::string::npos) << args;
  }
  auto v = run_command(cli() + " --version");
  EXPECT_EQ(v.status, 0);
  EXPECT_EQ(v.output.rfind("difftx ", 0), 0u) << v.output;
}

}  // namespace
}  // namespace difftx::testing
