// End-to-end training on the CPU: exact resume, checkpoints (keep last K, corruption, another
// architecture, unwritable output, full disk), NaN handling, generation from a checkpoint.
#include <gtest/gtest.h>

#include <fstream>

#include "difftx/core/atomic_file.h"
#include "train_test_util.h"

namespace difftx::testing {
namespace {

std::vector<std::string> train_loss_lines(const fs::path& metrics) {
  std::ifstream in(metrics);
  std::vector<std::string> losses;
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "train")
      losses.push_back(std::to_string(j["step"].get<int>()) + ":" + j["loss"].dump());
  }
  return losses;
}

fs::path fresh_dir(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("difftx_train_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p;
}

TEST(Training, ResumedRunReproducesUninterruptedLossesBitForBit) {
  fs::path a = fresh_dir("full"), b = fresh_dir("resumed");
  auto cfg_a = write_json(a / "run.json", tiny_run_config(a / "out", 9));
  auto cfg_b = write_json(b / "run.json", tiny_run_config(b / "out", 9));
  auto full = run_command(cli() + " train --quiet --config " + cfg_a.string());
  ASSERT_EQ(full.status, 0) << full.output;
  auto first = run_command(cli() + " train --quiet --stop-after 4 --config " + cfg_b.string());
  ASSERT_EQ(first.status, 0) << first.output;
  ASSERT_TRUE(fs::exists(b / "out/checkpoints/step_0000004/train_state.safetensors"));
  auto second = run_command(cli() + " train --quiet --resume --config " + cfg_b.string());
  ASSERT_EQ(second.status, 0) << second.output;
  auto la = train_loss_lines(a / "out/metrics.jsonl");
  auto lb = train_loss_lines(b / "out/metrics.jsonl");
  ASSERT_EQ(la.size(), 9u);
  EXPECT_EQ(la, lb);  // the JSON numbers round-trip exactly, so equal text = equal bits
  // keep_last = 2: only the two newest checkpoints remain.
  int kept = 0;
  for (const auto& e : fs::directory_iterator(a / "out/checkpoints")) kept += e.is_directory();
  EXPECT_EQ(kept, 2);
  EXPECT_TRUE(fs::exists(a / "out/checkpoints/step_0000009/model.safetensors"));
  EXPECT_TRUE(fs::exists(a / "out/checkpoints/step_0000009/tokenizer.model"));
}

TEST(Training, GenerateFromCheckpointIsDeterministicAndUsesTheCache) {
  fs::path a = fresh_dir("gen");
  auto cfg = write_json(a / "run.json", tiny_run_config(a / "out", 3));
  ASSERT_EQ(run_command(cli() + " train --quiet --config " + cfg.string()).status, 0);
  std::string gen = cli() + " generate --checkpoint " + (a / "out").string() +
                    " --prompt 'the cat' --max-tokens 12 --temperature 0.9 --top-k 20 --seed 4";
  auto g1 = run_command(gen), g2 = run_command(gen);
  ASSERT_EQ(g1.status, 0) << g1.output;
  EXPECT_EQ(g1.output, g2.output);
  EXPECT_EQ(g1.output.rfind("the cat", 0), 0u) << g1.output;
  auto bad = run_command(cli() + " generate --checkpoint " + (a / "out").string() +
                         " --prompt x --top-p 1.5");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("top_p"), std::string::npos) << bad.output;
}

class CheckpointErrors : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fresh_dir("ckerr");
    auto cfg = write_json(dir_ / "run.json", tiny_run_config(dir_ / "out", 3));
    auto r = run_command(cli() + " train --quiet --config " + cfg.string());
    ASSERT_EQ(r.status, 0) << r.output;
    ckpt_ = dir_ / "out/checkpoints/step_0000003";
  }
  static CommandResult generate_from(const fs::path& ck) {
    return run_command(cli() + " generate --checkpoint " + ck.string() +
                       " --prompt 'the' --max-tokens 3");
  }
  static fs::path copy_checkpoint(const std::string& name) {
    fs::path dst = dir_ / name;
    fs::remove_all(dst);
    fs::copy(ckpt_, dst, fs::copy_options::recursive);
    return dst;
  }
  static inline fs::path dir_, ckpt_;
};

TEST_F(CheckpointErrors, MissingCheckpoint) {
  auto r = generate_from(dir_ / "nope");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("nope"), std::string::npos) << r.output;
}

TEST_F(CheckpointErrors, TruncatedWeights) {
  fs::path ck = copy_checkpoint("truncated");
  fs::resize_file(ck / "model.safetensors", fs::file_size(ck / "model.safetensors") / 2);
  auto r = generate_from(ck);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("model.safetensors"), std::string::npos) << r.output;
}

TEST_F(CheckpointErrors, BitFlippedWeights) {
  fs::path ck = copy_checkpoint("flipped");
  auto bytes = read_file_bytes(ck / "model.safetensors");
  bytes[bytes.size() - 100] ^= std::byte{0x10};  // inside the tensor data
  write_file_atomic(ck / "model.safetensors", bytes);
  auto r = generate_from(ck);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("checksum"), std::string::npos) << r.output;
}

TEST_F(CheckpointErrors, CheckpointOfAnotherArchitecture) {
  fs::path ck = copy_checkpoint("other_arch");
  auto cfg = nlohmann::json::parse(read_file_text(ck / "config.json"));
  cfg["model"]["attention"] = "softmax";
  cfg["model"]["n_heads"] = 4;
  cfg["model"]["n_kv_heads"] = 2;
  cfg["model"]["head_dim"] = 8;
  write_file_atomic(ck / "config.json", cfg.dump());
  auto r = generate_from(ck);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("another architecture"), std::string::npos) << r.output;
}

TEST_F(CheckpointErrors, ResumeIntoDifferentModelIsRefused) {
  auto cfg = tiny_run_config(dir_ / "out", 6);
  cfg["model"]["n_layers"] = 3;
  auto path = write_json(dir_ / "run_other.json", cfg);
  auto r = run_command(cli() + " train --quiet --resume --config " + path.string());
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("another architecture"), std::string::npos) << r.output;
}

TEST(TrainingErrors, UnwritableOutputFolder) {
  fs::path a = fresh_dir("unwritable");
  fs::create_directories(a);
  std::ofstream(a / "file") << "x";
  auto cfg = write_json(a / "run.json", tiny_run_config(a / "file" / "out", 2));
  auto r = run_command(cli() + " train --quiet --config " + cfg.string());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("file"), std::string::npos) << r.output;
}

TEST(TrainingErrors, FullDiskKeepsThePreviousCheckpointIntact) {
  fs::path a = fresh_dir("fulldisk");
  auto cfg = write_json(a / "run.json", tiny_run_config(a / "out", 6));
  ASSERT_EQ(run_command(cli() + " train --quiet --stop-after 3 --config " + cfg.string()).status,
            0);
  fs::path prev = a / "out/checkpoints/step_0000003";
  auto before = read_file_bytes(prev / "model.safetensors");
  ASSERT_GT(before.size(), 40u * 1024);
  // RLIMIT_FSIZE makes any write past 32 KiB fail like a full disk (EFBIG; SIGXFSZ ignored).
  auto r = run_command("sh -c \"ulimit -f 32; trap '' XFSZ; " + cli() +
                       " train --quiet --resume --config " + cfg.string() + "\"");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("earlier checkpoints are intact"), std::string::npos) << r.output;
  EXPECT_EQ(read_file_bytes(prev / "model.safetensors"), before);
  EXPECT_TRUE(fs::exists(prev / "train_state.safetensors"));
  for (const auto& e : fs::directory_iterator(a / "out/checkpoints")) {
    EXPECT_EQ(e.path().filename().string().find(".partial"), std::string::npos) << e.path();
  }
  // The intact checkpoint still resumes.
  auto again = run_command(cli() + " train --quiet --resume --config " + cfg.string());
  EXPECT_EQ(again.status, 0) << again.output;
}

TEST(TrainingErrors, NanLossStopsNamingTheStepOrSkipsByTheRule) {
  fs::path a = fresh_dir("nan");
  auto j = tiny_run_config(a / "out", 8);
  j["schedule"] = {{"lr", 1e30}, {"warmup_steps", 0}};
  j["optim"]["grad_clip"] = 0.0;
  auto cfg = write_json(a / "run.json", j);
  auto r = run_command(cli() + " train --quiet --config " + cfg.string());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("at step"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("nan_policy"), std::string::npos) << r.output;
  j["train"]["nan_policy"] = "skip";
  j["train"]["max_skipped_steps"] = 2;
  j["output"]["dir"] = (a / "out2").string();
  cfg = write_json(a / "run2.json", j);
  r = run_command(cli() + " train --quiet --config " + cfg.string());
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("in a row"), std::string::npos) << r.output;
}

TEST(TrainingErrors, BadRunConfigFieldsAreNamed) {
  fs::path a = fresh_dir("badcfg");
  struct Case {
    const char* section;
    const char* key;
    nlohmann::json value;
    const char* expect;
  };
  std::vector<Case> cases = {
      {"train", "stepz", 3, "'stepz'"},     {"train", "steps", "ten", "'steps'"},
      {"data", "seq_len", 64, "'seq_len'"},  // > max_seq_len
      {"optim", "beta2", 1.5, "'beta2'"},   {"train", "device", "tpu", "'device'"},
      {"schedule", "lr", -1.0, "'lr'"}};
  for (const auto& c : cases) {
    auto j = tiny_run_config(a / "out", 3);
    j[c.section][c.key] = c.value;
    auto cfg = write_json(a / "bad.json", j);
    auto r = run_command(cli() + " train --quiet --config " + cfg.string());
    EXPECT_EQ(r.status, 1) << c.key;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace difftx::testing
