// `difftx generate` as users call it: prompts from a file and stdin, several samples from
// consecutive seeds, stop strings, a printed random seed that reproduces the output, the stop
// reason (context full beyond max_seq_len), checks before any output, and --checkpoint
// resolution (run folder, checkpoint folder, Hugging Face folder).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "train/train_test_util.h"

namespace difftx::testing {
namespace {

class GenerateCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("difftx_generate_cli_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    auto j = tiny_run_config(dir_ / "run", 30);
    j["train"]["eval_every"] = 0;
    j["output"]["checkpoint_every"] = 0;
    auto cfg = write_json(dir_ / "run.json", j);
    auto r = run_command(cli() + " train --quiet --config " + cfg.string());
    ASSERT_EQ(r.status, 0) << r.output;
  }
  static CommandResult generate(const std::string& args) {
    return run_command(cli() + " generate --checkpoint " + (dir_ / "run").string() + " " + args);
  }
  // stdout only
  static CommandResult generate_stdout(const std::string& args) {
    return run_command(cli() + " generate --checkpoint " + (dir_ / "run").string() + " " + args +
                       " 2>/dev/null");
  }
  static inline fs::path dir_;
};

TEST_F(GenerateCli, PromptFromFileAndStdinEqualsTheArgument) {
  const auto expected = generate("--prompt 'the cat' --max-tokens 8 --seed 5");
  ASSERT_EQ(expected.status, 0) << expected.output;
  std::ofstream(dir_ / "prompt.txt") << "the cat\n";  // one final newline is dropped
  EXPECT_EQ(generate("--prompt-file " + (dir_ / "prompt.txt").string() + " --max-tokens 8 --seed 5")
                .output,
            expected.output);
  EXPECT_EQ(run_command("printf 'the cat\\n' | " + cli() + " generate --checkpoint " +
                        (dir_ / "run").string() + " --prompt - --max-tokens 8 --seed 5")
                .output,
            expected.output);
  auto none = generate("--max-tokens 8");
  EXPECT_EQ(none.status, 1);
  EXPECT_NE(none.output.find("--prompt-file"), std::string::npos) << none.output;
}

TEST_F(GenerateCli, SeveralSamplesUseConsecutiveSeeds) {
  auto r = generate_stdout("--prompt 'a dog' --max-tokens 6 --seed 7 --samples 3");
  ASSERT_EQ(r.status, 0) << r.output;
  for (int i = 0; i < 3; ++i) {
    EXPECT_NE(r.output.find(fmt::format("=== sample {}/3 (seed {})", i + 1, 7 + i)),
              std::string::npos)
        << r.output;
  }
  // Sample 2 of the set is what a single run with its seed produces.
  auto single = generate_stdout("--prompt 'a dog' --max-tokens 6 --seed 8");
  ASSERT_EQ(single.status, 0);
  const std::size_t at = r.output.find("=== sample 2/3 (seed 8)\n");
  ASSERT_NE(at, std::string::npos);
  EXPECT_EQ(
      r.output.substr(at + std::string("=== sample 2/3 (seed 8)\n").size(), single.output.size()),
      single.output);
}

TEST_F(GenerateCli, TheDefaultSeedIsRandomPrintedAndReproduces) {
  auto a = generate("--prompt the --max-tokens 10");
  auto b = generate("--prompt the --max-tokens 10");
  ASSERT_EQ(a.status, 0) << a.output;
  std::smatch ma, mb;
  const std::regex seed("seed (\\d+)\\]");
  ASSERT_TRUE(std::regex_search(a.output, ma, seed)) << a.output;
  ASSERT_TRUE(std::regex_search(b.output, mb, seed)) << b.output;
  EXPECT_NE(ma[1].str(), mb[1].str());
  EXPECT_EQ(generate("--prompt the --max-tokens 10 --seed " + ma[1].str()).output, a.output);
}

TEST_F(GenerateCli, StopStringsEndTheTextBeforeThem) {
  auto greedy = generate_stdout("--prompt 'the cat' --max-tokens 20 --temperature 0");
  ASSERT_EQ(greedy.status, 0) << greedy.output;
  const std::string continuation = greedy.output.substr(std::string("the cat").size());
  ASSERT_GE(continuation.size(), 6u) << greedy.output;
  const std::string stop = continuation.substr(3, 2);  // spans whatever tokens it spans
  const std::size_t first = continuation.find(stop);
  auto r = generate("--prompt 'the cat' --max-tokens 20 --temperature 0 --stop 'zzzz' --stop '" +
                    stop + "'");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output.rfind("the cat" + continuation.substr(0, first) + "\n", 0), 0u) << r.output;
  EXPECT_NE(r.output.find("stopped: stop string \"" + stop + "\""), std::string::npos) << r.output;
}

TEST_F(GenerateCli, BeyondTheContextTheStopReasonSaysSo) {
  auto r = generate("--prompt the --max-tokens 300 --temperature 0 --seed 1");
  ASSERT_EQ(r.status, 0) << r.output;
  if (r.output.find("end of text") == std::string::npos) {
    EXPECT_NE(r.output.find("stopped: the context is full (max_seq_len 32"), std::string::npos)
        << r.output;
  }
  r = generate("--prompt the --max-tokens 3 --seed 1");
  EXPECT_TRUE(r.output.find("--max-tokens 3 reached") != std::string::npos ||
              r.output.find("end of text") != std::string::npos)
      << r.output;
}

TEST_F(GenerateCli, BadOptionsAreReportedBeforeAnythingIsPrinted) {
  for (const char* args :
       {"--prompt 'The jury said' --top-p 1.5", "--prompt 'The jury said' --temperature -1",
        "--prompt 'The jury said' --stop ''"}) {
    auto r = generate(args);
    EXPECT_EQ(r.status, 1) << args;
    EXPECT_EQ(r.output.rfind("difftx: error: ", 0), 0u) << args << ": " << r.output;
    EXPECT_EQ(r.output.find("The jury said"), std::string::npos) << r.output;
  }
  std::string long_prompt;
  for (int i = 0; i < 40; ++i) long_prompt += "the cat sees the house. ";
  auto r = generate("--prompt '" + long_prompt + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.output.rfind("difftx: error: the prompt is", 0), 0u) << r.output;
}

TEST_F(GenerateCli, CheckpointArgumentsResolveTheSameWayEverywhere) {
  const fs::path ck = dir_ / "run/checkpoints/step_0000030";
  EXPECT_EQ(run_command(cli() + " generate --checkpoint " + ck.string() +
                        " --prompt the --max-tokens 4 --seed 2")
                .output,
            generate("--prompt the --max-tokens 4 --seed 2").output);
  // export hf takes the run folder too, and refuses to write into one.
  auto r = run_command(cli() + " export hf --checkpoint " + (dir_ / "run").string() + " --out " +
                       (dir_ / "hf").string());
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_command(cli() + " generate --checkpoint " + (dir_ / "hf").string() + " --prompt the");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(
      r.output.find("this is a Hugging Face folder: import it first with `difftx import hf --in"),
      std::string::npos)
      << r.output;
  r = run_command(cli() + " export hf --checkpoint " + ck.string() + " --out " +
                  (dir_ / "run").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("is a training run folder"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "run/config.json"));
  r = run_command(cli() + " export hf --checkpoint " + ck.string() + " --out " + ck.string());
  EXPECT_EQ(r.status, 1);
  r = run_command(cli() + " import hf --in " + (dir_ / "hf").string() + " --out " +
                  (dir_ / "run").string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("is a training run folder"), std::string::npos) << r.output;
  // An import is a difftx checkpoint: generate and --init-from take it.
  r = run_command(cli() + " import hf --in " + (dir_ / "hf").string() + " --out " +
                  (dir_ / "imported").string());
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_command(cli() + " generate --checkpoint " + (dir_ / "imported").string() +
                  " --prompt the --max-tokens 3");
  EXPECT_EQ(r.status, 0) << r.output;
  auto j = tiny_run_config(dir_ / "fine", 2);
  std::ifstream imported_config(dir_ / "imported/config.json");
  j["model"] = nlohmann::json::parse(imported_config)["model"];  // the architecture as imported
  auto cfg = write_json(dir_ / "fine.json", j);
  r = run_command(cli() + " train --quiet --config " + cfg.string() + " --init-from " +
                  (dir_ / "imported").string());
  EXPECT_EQ(r.status, 0) << r.output;
}

}  // namespace
}  // namespace difftx::testing
