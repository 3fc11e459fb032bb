// `difftx train --nproc-per-node N --device cpu` end to end (CPU ranks under mpirun, fp32):
//   - 2 and 3 ranks with B/N rows each follow one process with B rows for 20 steps (train and
//     validation losses within kTolerance nats: float32 sums in another order, nothing else);
//   - a run stopped at step 10 resumes at another world size (2 -> 3 ranks, 3 ranks -> one
//     process) and continues the same loss curve;
//   - a killed rank, and a rank that stops answering, end the job with a message on every
//     surviving rank, in seconds, with no hang;
//   - bad layouts are refused with one clear line.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "dist/dist_test_util.h"
#include "train/train_test_util.h"

namespace difftx::dist::testing {
namespace {

namespace fs = std::filesystem;
using difftx::testing::tiny_data_dir;
using difftx::testing::write_json;

// Float32 CPU ranks add the same gradients in another order (per-rank means summed, against
// one mean over the batch): the curves agree to ~1e-6 per step; this leaves room for 20 steps
// of AdamW and the loaded machine's thread counts, and is far below any real mismatch (a
// missing or doubled row moves the loss by > 1e-2).
constexpr double kTolerance = 2e-4;

fs::path fresh_dir(const std::string& name) {
  fs::path p =
      fs::temp_directory_path() / ("difftx_dist_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

nlohmann::json run_config(const fs::path& out, int steps) {
  return {{"model",
           {{"vocab_size", 384},
            {"d_model", 32},
            {"n_layers", 2},
            {"attention", "diff_v1"},
            {"n_heads", 2},
            {"n_kv_heads", 1},
            {"max_seq_len", 32}}},
          {"data",
           {{"path", tiny_data_dir().string()}, {"seq_len", 16}, {"batch_size", 6}, {"seed", 3}}},
          {"optim", {{"grad_accum", 2}}},
          {"schedule", {{"lr", 3e-3}, {"warmup_steps", 2}, {"min_lr", 3e-4}}},
          {"train", {{"steps", steps}, {"eval_every", 10}, {"eval_batches", 4}, {"log_every", 5}}},
          {"output", {{"dir", out.string()}, {"checkpoint_every", 10}, {"keep_last", 3}}}};
}

struct Curve {
  std::map<int, double> train, val;
  std::vector<nlohmann::json> records;
  // The newest "train" record (null if none).
  nlohmann::json last_train() const {
    for (auto it = records.rbegin(); it != records.rend(); ++it) {
      if ((*it)["type"] == "train") return *it;
    }
    return nullptr;
  }
};

Curve read_curve(const fs::path& metrics) {
  Curve c;
  std::ifstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    c.records.push_back(j);
    if (j["type"] == "train") c.train[j["step"].get<int>()] = j["loss"].get<double>();
    if (j["type"] == "eval") c.val[j["step"].get<int>()] = j["val_loss"].get<double>();
  }
  return c;
}

std::string train(const fs::path& config, const std::string& extra) {
  return std::string(DIFFTX_CLI) + " train --quiet --device cpu --config " + config.string() + " " +
         extra;
}

void expect_same_curve(const Curve& ref, const Curve& got, int from, int to,
                       const std::string& what) {
  for (int step = from; step <= to; ++step) {
    ASSERT_TRUE(got.train.count(step)) << what << ": no step " << step;
    EXPECT_NEAR(got.train.at(step), ref.train.at(step), kTolerance) << what << " step " << step;
  }
  for (const auto& [step, loss] : got.val) {
    if (ref.val.count(step)) {
      EXPECT_NEAR(loss, ref.val.at(step), kTolerance) << what << " eval " << step;
    }
  }
}

class DistTrain : public ::testing::Test {
 protected:
  // One process, the whole batch of 6: the reference curve of 20 steps.
  static void SetUpTestSuite() {
    const fs::path dir = fresh_dir("reference");
    const auto cfg = write_json(dir / "run.json", run_config(dir / "out", 20));
    const auto r = run_limited(train(cfg, ""), 600);
    ASSERT_EQ(r.status, 0) << r.output;
    reference_ = new Curve(read_curve(dir / "out/metrics.jsonl"));
    ASSERT_EQ(reference_->train.size(), 20u);
    ASSERT_EQ(reference_->val.size(), 2u);
  }
  static void TearDownTestSuite() { delete reference_; }
  static Curve* reference_;
};
Curve* DistTrain::reference_ = nullptr;

TEST_F(DistTrain, TwoAndThreeRanksOfBOverNFollowOneProcessOfB) {
  for (int ranks : {2, 3}) {
    const fs::path dir = fresh_dir("equal" + std::to_string(ranks));
    const auto cfg = write_json(dir / "run.json", run_config(dir / "out", 20));
    const auto r = run_limited(train(cfg, "--nproc-per-node " + std::to_string(ranks)), 600);
    ASSERT_EQ(r.status, 0) << r.output;
    const Curve c = read_curve(dir / "out/metrics.jsonl");
    expect_same_curve(*reference_, c, 1, 20, std::to_string(ranks) + " ranks");
    // Rank 0 alone wrote the log; it records the world size and each step's communication.
    EXPECT_EQ(c.records.front()["world"], ranks);
    const nlohmann::json last = c.last_train();
    ASSERT_FALSE(last.is_null()) << "no train record";
    EXPECT_GT(last["comm"]["reduce_scatter_mb"].get<double>(), 0) << last.dump();
    EXPECT_GT(last["comm"]["all_gather_mb"].get<double>(), 0) << last.dump();
    EXPECT_TRUE(fs::exists(dir / "out/checkpoints/step_0000020/train_state.safetensors"));
    EXPECT_NE(r.output.find("trained 20 steps"), std::string::npos) << r.output;
  }
  // Plain all-reduce (no ZeRO) gives the same curve too.
  const fs::path dir = fresh_dir("allreduce");
  const auto cfg = write_json(dir / "run.json", run_config(dir / "out", 20));
  const auto r = run_limited(train(cfg, "--nproc-per-node 2 --zero 0 --bucket-mb 0.01"), 600);
  ASSERT_EQ(r.status, 0) << r.output;
  const Curve c = read_curve(dir / "out/metrics.jsonl");
  expect_same_curve(*reference_, c, 1, 20, "2 ranks, all-reduce");
  ASSERT_FALSE(c.last_train().is_null()) << "no train record";
  EXPECT_GT(c.last_train()["comm"]["all_reduce_mb"].get<double>(), 0);
}

TEST_F(DistTrain, ResumingAtAnotherWorldSizeContinuesTheSameCurve) {
  // 2 ranks to step 10, then 3 ranks to 20.
  const fs::path a = fresh_dir("resume23");
  const auto cfg_a = write_json(a / "run.json", run_config(a / "out", 20));
  auto r = run_limited(train(cfg_a, "--nproc-per-node 2 --stop-after 10"), 600);
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_limited(train(cfg_a, "--nproc-per-node 3 --resume"), 600);
  ASSERT_EQ(r.status, 0) << r.output;
  expect_same_curve(*reference_, read_curve(a / "out/metrics.jsonl"), 1, 20, "2 then 3 ranks");
  // 3 ranks to step 10, then one process (the plain trainer reads the gathered state).
  const fs::path b = fresh_dir("resume31");
  const auto cfg_b = write_json(b / "run.json", run_config(b / "out", 20));
  r = run_limited(train(cfg_b, "--nproc-per-node 3 --stop-after 10"), 600);
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_limited(train(cfg_b, "--resume"), 600);
  ASSERT_EQ(r.status, 0) << r.output;
  expect_same_curve(*reference_, read_curve(b / "out/metrics.jsonl"), 1, 20, "3 ranks then 1");
  // Another global batch cannot continue the sample order: refused, naming both.
  auto other = run_config(b / "out", 30);
  other["data"]["batch_size"] = 4;
  const auto cfg_c = write_json(b / "other.json", other);
  r = run_limited(train(cfg_c, "--nproc-per-node 2 --resume"), 600);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("the checkpoint's run drew global batches of 6 rows (1 rank(s) x 6), "
                          "this run 4 (2 x 2)"),
            std::string::npos)
      << r.output;
}

// Starts a long 2-rank job, waits for step 3, then does `act` to rank 1.
struct StoppedRank {
  int status = -1;
  std::string output;
  double seconds = 0;
};
StoppedRank stop_rank_one(const std::string& name, int signal, const std::string& extra) {
  const fs::path dir = fresh_dir(name);
  const auto cfg = write_json(dir / "run.json", run_config(dir / "out", 100000));
  const std::string tag = "DIFFTX_TEST_TAG=" + name + std::to_string(::getpid());
  BackgroundJob job("env " + tag + " " + train(cfg, "--nproc-per-node 2 " + extra),
                    dir / "log.txt");
  StoppedRank out;
  for (int i = 0; i < 600; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::ifstream in(dir / "out/metrics.jsonl");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (count_of(text, "\"type\":\"train\"") >= 3) break;
  }
  const pid_t victim = find_process_with_env({tag, "OMPI_COMM_WORLD_RANK=1"});
  EXPECT_GT(victim, 0) << "rank 1 not found:\n" << job.output();
  if (victim <= 0) return out;
  const auto t0 = std::chrono::steady_clock::now();
  ::kill(victim, signal);
  const auto status = job.wait_for(120);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out.output = job.output();
  EXPECT_TRUE(status.has_value()) << "the job hung after rank 1 got signal " << signal << ":\n"
                                  << out.output;
  if (signal == SIGSTOP) ::kill(victim, SIGKILL);
  out.status = status.value_or(-1);
  return out;
}

TEST(DistFailures, AKilledRankEndsTheJobWithAMessageOnEveryRank) {
  const StoppedRank r = stop_rank_one("killed", SIGKILL, "");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_LT(r.seconds, 60) << r.output;
  // The survivor says why it stops; the launcher names the failure.
  EXPECT_NE(r.output.find("difftx: error: rank 0/2: stopped by a signal from the launcher"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("difftx: error: the 2 CPU ranks did not all finish: mpirun"),
            std::string::npos)
      << r.output;
}

TEST(DistFailures, ASilentRankEndsTheJobAtTheDeadline) {
  const StoppedRank r = stop_rank_one("silent", SIGSTOP, "--dist-timeout 3");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_LT(r.seconds, 60) << r.output;
  EXPECT_NE(r.output.find("difftx: error: rank 0/2: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("did not complete within 3 s: another rank stopped responding"),
            std::string::npos)
      << r.output;
}

TEST(DistFailures, BadLayoutsAreRefusedWithOneLine) {
  const fs::path dir = fresh_dir("bad");
  auto bad = run_config(dir / "out", 5);
  bad["data"]["batch_size"] = 5;
  const auto cfg = write_json(dir / "run.json", bad);
  auto r = run_limited(train(cfg, "--nproc-per-node 2"), 300);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("data.batch_size 5 (the global micro-batch) does not split evenly over "
                          "2 ranks: use a multiple of 2"),
            std::string::npos)
      << r.output;
  // CPU ranks need MPI: torchrun-style variables alone are refused.
  const auto good = write_json(dir / "good.json", run_config(dir / "out2", 5));
  r = run_limited(
      "env WORLD_SIZE=2 RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=29999 " + train(good, ""), 120);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("difftx: error: rank 1/2: CPU ranks communicate through MPI"),
            std::string::npos)
      << r.output;
  r = run_limited(train(good, "--nproc-per-node 0"), 60);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--nproc-per-node"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace difftx::dist::testing
