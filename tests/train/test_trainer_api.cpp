// The Trainer as a library class (what data-parallel training will wrap): step() runs the
// gradient hook between backward and the optimizer, evaluate() and checkpoint() work on their
// own, and the run folder rules hold in-process too.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "difftx/core/error.h"
#include "difftx/train/trainer.h"
#include "train_test_util.h"

namespace difftx {
namespace {
namespace fs = std::filesystem;

RunConfig tiny(const std::string& name, int steps) {
  const fs::path dir =
      fs::temp_directory_path() / ("difftx_trainer_api_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return RunConfig::from_json(testing::tiny_run_config(dir / "out", steps), name);
}

TrainOptions quiet() {
  TrainOptions o;
  o.quiet = true;
  o.stop_on_signal = false;
  return o;
}

TEST(TrainerApi, TheGradientHookRunsBetweenBackwardAndTheOptimizer) {
  Trainer trainer(tiny("hook", 5), quiet());
  int calls = 0;
  double gradient_seen = 0;
  trainer.set_gradient_hook([&](Model& model, double& loss) {
    ++calls;
    // The gradients of this step are complete here (an all-reduce would average them).
    Tensor g = model.grads().tensor(0).to(Device::cpu);
    for (float v : g.to_float_vector()) gradient_seen += std::fabs(v);
    loss = 42.0;  // e.g. the mean loss over ranks
  });
  const StepResult r = trainer.step();
  EXPECT_EQ(calls, 1);
  EXPECT_GT(gradient_seen, 0.0);
  EXPECT_EQ(r.step, 1);
  EXPECT_DOUBLE_EQ(r.loss, 42.0);
  EXPECT_EQ(trainer.step_index(), 1);

  // A hook that reports a non-finite loss stops the step before the optimizer (nan_policy stop).
  trainer.set_gradient_hook([](Model&, double& loss) { loss = NAN; });
  EXPECT_THROW(trainer.step(), Error);
}

TEST(TrainerApi, StepEvaluateAndCheckpointOnTheirOwn) {
  RunConfig cfg = tiny("pieces", 6);
  Trainer trainer(cfg, quiet());
  EXPECT_EQ(trainer.start_step(), 0);
  trainer.step();
  trainer.step();
  const EvalPoint p = trainer.evaluate();
  EXPECT_EQ(p.step, 2);
  EXPECT_TRUE(std::isfinite(p.val_loss));
  EXPECT_EQ(p.lambdas.size(), 2u);  // DIFF V1, 2 layers
  const fs::path ck = trainer.checkpoint();
  EXPECT_EQ(ck.filename(), "step_0000002");
  EXPECT_TRUE(fs::exists(ck / "train_state.safetensors"));

  // The folder now holds a run: a second Trainer is refused unless it resumes.
  EXPECT_THROW(Trainer(cfg, quiet()), Error);
  TrainOptions resume = quiet();
  resume.resume = true;
  Trainer resumed(cfg, resume);
  EXPECT_EQ(resumed.start_step(), 2);
  const TrainSummary s = resumed.run();
  EXPECT_EQ(s.steps_done, 6);
  EXPECT_EQ(s.start_step, 2);
  EXPECT_EQ(s.stop_reason, StopReason::completed);
  ASSERT_TRUE(s.final_val_loss.has_value());
  EXPECT_EQ(s.checkpoint.filename(), "step_0000006");
}

}  // namespace
}  // namespace difftx
