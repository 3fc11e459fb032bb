// One test per defect of issue 17 in the input-safety scope, each driving the built `difftx`:
// every bad input must end in exactly one `difftx: error:` line and exit code 1 — never a
// crash, a hang (each run has a time limit), a silent acceptance or an "internal error".
// Each of these failed before the input-safety layer (see tests/safety/README.md).
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "safety_test_util.h"

namespace difftx::safety {
namespace {

constexpr int kDeep = 200000;  // nesting that overflowed the stack of the recursive consumers

class BadInput : public ::testing::Test {
 protected:
  TempDir tmp_;

  // A run config file: the tiny config with `patch` applied.
  fs::path config(const std::string& name, const std::function<void(json&)>& patch, int steps = 2) {
    json cfg = tiny_config(tmp_ / ("out_" + name), steps);
    patch(cfg);
    return write_text(tmp_ / (name + ".json"), cfg.dump(2));
  }
  CliRun train(const fs::path& cfg, const std::string& extra = "", int seconds = 60) {
    return run_cli("train --quiet --config " + cfg.string() + " " + extra, seconds);
  }
  // A Hugging Face folder exported from the tiny checkpoint.
  fs::path hf_folder(const std::string& name) {
    const fs::path out = tmp_ / name;
    const auto r = difftx::testing::run_command(
        std::string(DIFFTX_CLI) + " export hf --checkpoint " +
        checkpoint_of(trained_run()).string() + " --out " + out.string());
    if (r.status != 0) ADD_FAILURE() << r.output;
    return out;
  }
};

// ---- crashes: JSON nested 100,000+ levels deep -------------------------------------------

TEST_F(BadInput, DeeplyNestedRunConfig) {
  // A deep value where the config is copied (schedule), and where it is ignored (comment).
  for (const std::string key : {"schedule", "comment"}) {
    std::string text = tiny_config(tmp_ / "out", 2).dump();
    const std::string value =
        key == "schedule" ? "{\"lr\": " + deep_json(kDeep) + "}" : deep_json(kDeep);
    const auto at = text.find("\"" + key + "\":");
    if (at != std::string::npos) text.erase(at, text.find('}', at) + 2 - at);  // drop the old one
    text.insert(text.size() - 1, ", \"" + key + "\": " + value);
    write_text(tmp_ / "deep.json", text);
    expect_clean_error(train(tmp_ / "deep.json"), {"deep.json", "nested more than"});
  }
}

TEST_F(BadInput, DeeplyNestedModelConfig) {
  write_text(tmp_ / "model.json", "{\"vocab_size\": " + deep_json(kDeep) + "}");
  expect_clean_error(run_cli("model info --config " + (tmp_ / "model.json").string()),
                     {"model.json", "nested more than"});
}

TEST_F(BadInput, DeeplyNestedSafetensorsHeader) {
  for (const std::string where : {"entry", "metadata"}) {
    const fs::path run = copy_run(tmp_ / ("run_" + where));
    const fs::path weights = checkpoint_of(run) / "model.safetensors";
    const std::string value = deep_json(kDeep);
    std::string header = where == "entry"
                             ? "{\"norm.weight\": {\"dtype\": \"F32\", \"shape\": " + value + "}}"
                             : "{\"__metadata__\": {\"format\": " + value + "}}";
    header.append((8 - header.size() % 8) % 8, ' ');
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    write_text(weights, bytes + header);
    expect_clean_error(
        run_cli("generate --checkpoint " + checkpoint_of(run).string() + " --prompt a"),
        {"model.safetensors", "nested more than"});
  }
}

TEST_F(BadInput, DeeplyNestedHfConfigAndIndex) {
  const fs::path hf = hf_folder("hf");
  const std::string config = read_file_text(hf / "config.json");
  write_text(hf / "config.json", "{\"model_type\": " + deep_json(kDeep) + "}");
  expect_clean_error(run_cli("import hf --in " + hf.string() + " --out " + (tmp_ / "imp").string()),
                     {"config.json", "nested more than"});
  write_text(hf / "config.json", config);
  write_text(hf / "model.safetensors.index.json",
             "{\"weight_map\": {\"x\": " + deep_json(kDeep) + "}}");
  expect_clean_error(run_cli("import hf --in " + hf.string() + " --out " + (tmp_ / "imp").string()),
                     {"model.safetensors.index.json", "nested more than"});
}

// ---- hangs: FIFOs, absurd sizes, a fractional step -----------------------------------------

TEST_F(BadInput, FifoAsModelConfig) {
  ASSERT_EQ(::mkfifo((tmp_ / "fifo.json").c_str(), 0600), 0);
  expect_clean_error(run_cli("model info --config " + (tmp_ / "fifo.json").string(), 20),
                     {"fifo.json", "FIFO"});
  expect_clean_error(run_cli("train --config " + (tmp_ / "fifo.json").string(), 20), {"FIFO"});
}

TEST_F(BadInput, FifoAsCheckpointConfig) {
  const fs::path ck = checkpoint_of(copy_run(tmp_ / "run"));
  fs::remove(ck / "config.json");
  ASSERT_EQ(::mkfifo((ck / "config.json").c_str(), 0600), 0);
  expect_clean_error(run_cli("generate --checkpoint " + ck.string() + " --prompt a", 20),
                     {"config.json", "FIFO"});
}

TEST_F(BadInput, FifoInImportedFolder) {
  const fs::path hf = hf_folder("hf");
  fs::remove(hf / "config.json");
  ASSERT_EQ(::mkfifo((hf / "config.json").c_str(), 0600), 0);
  expect_clean_error(
      run_cli("import hf --in " + hf.string() + " --out " + (tmp_ / "a").string(), 20),
      {"config.json", "FIFO"});
  const fs::path hf2 = hf_folder("hf2");
  fs::remove(hf2 / "model.safetensors");
  ASSERT_EQ(::mkfifo((hf2 / "model.safetensors").c_str(), 0600), 0);
  expect_clean_error(
      run_cli("import hf --in " + hf2.string() + " --out " + (tmp_ / "b").string(), 20),
      {"model.safetensors", "FIFO"});
}

TEST_F(BadInput, AbsurdLayerCountFailsFastWithTheFigure) {
  json model = tiny_config(tmp_ / "o", 2)["model"];
  model["n_layers"] = 2147483647;
  write_text(tmp_ / "layers.json", model.dump());
  expect_clean_error(run_cli("model info --config " + (tmp_ / "layers.json").string(), 20),
                     {"this model needs", "GiB", "n_layers (2147483647)"});
  expect_clean_error(
      train(config("layers", [](json& c) { c["model"]["n_layers"] = 2147483647; }), "", 20),
      {"this model needs", "GiB"});
}

TEST_F(BadInput, AbsurdHiddenSizeFailsFastWithTheFigure) {
  const fs::path hf = hf_folder("hf");
  json cfg = json::parse(read_file_text(hf / "config.json"));
  cfg["hidden_size"] = 1 << 30;
  cfg["num_attention_heads"] = 1 << 29;
  cfg["num_key_value_heads"] = 1 << 29;
  cfg["head_dim"] = 2;
  write_text(hf / "config.json", cfg.dump());
  expect_clean_error(
      run_cli("import hf --in " + hf.string() + " --out " + (tmp_ / "imp").string(), 20),
      {"this model needs", "GiB"});
}

TEST_F(BadInput, AbsurdBatchFailsFastWithTheFigure) {
  expect_clean_error(
      train(config("batch", [](json& c) { c["data"]["batch_size"] = 1 << 26; }), "", 20),
      {"this model needs", "GiB", "to train on batches of 67108864 x 16 tokens",
       "this machine has"});
}

TEST_F(BadInput, AbsurdGradAccumIsRefused) {
  expect_clean_error(
      train(config("accum", [](json& c) { c["optim"]["grad_accum"] = 2147483647; }), "", 20),
      {"(optim): field 'grad_accum' is out of range: 2147483647 (at most 65536)"});
}

// ---- silent truncation: integers beyond the range of their type ---------------------------

TEST_F(BadInput, IntegerFieldsBeyondTheirRange) {
  const std::vector<std::pair<std::string, std::string>> fields = {{"data", "seq_len"},
                                                                   {"data", "batch_size"},
                                                                   {"optim", "grad_accum"},
                                                                   {"train", "eval_every"},
                                                                   {"train", "eval_batches"},
                                                                   {"train", "log_every"},
                                                                   {"train", "max_skipped_steps"},
                                                                   {"output", "checkpoint_every"},
                                                                   {"output", "keep_last"},
                                                                   {"train", "steps"},
                                                                   {"model", "n_layers"},
                                                                   {"schedule", "warmup_steps"}};
  for (const auto& [section, field] : fields) {
    for (const char* value : {"4294967297", "9223372036854775808", "2.5"}) {
      json cfg = tiny_config(tmp_ / "out", 2);
      cfg[section][field] = 0;  // placeholder, replaced in the text: keep the literal exact
      std::string text = cfg.dump();
      const std::string key = "\"" + field + "\":0";
      const auto at = text.find(key);
      ASSERT_NE(at, std::string::npos) << key;
      text.replace(at, key.size(), "\"" + field + "\":" + value);
      const fs::path path = write_text(tmp_ / (section + "_" + field + ".json"), text);
      SCOPED_TRACE(section + "." + field + " = " + value);
      const bool fraction = std::string(value) == "2.5";
      expect_clean_error(
          train(path, "", 20),
          {"field '" + field + "'", fraction ? "must be an integer" : "is out of range"});
    }
  }
}

TEST_F(BadInput, HeadCountTimesHeadDimOverflow) {
  // 65537 * 65536 wraps to 65536 in 32 bits: equal to d_model unless computed in 64 bits.
  const json model = {{"vocab_size", 100},      {"d_model", 65536}, {"n_layers", 1},
                      {"attention", "softmax"}, {"n_heads", 65537}, {"head_dim", 65536},
                      {"n_kv_heads", 65537},    {"ffn_dim", 64},    {"max_seq_len", 16}};
  write_text(tmp_ / "heads.json", model.dump());
  expect_clean_error(run_cli("model info --config " + (tmp_ / "heads.json").string(), 20),
                     {"field 'd_model' (65536) must equal n_heads * head_dim = 4295032832"});
}

// ---- silent acceptance of corrupt or mismatched checkpoints --------------------------------

TEST_F(BadInput, FloatTensorRetypedAsI32) {
  const fs::path ck = checkpoint_of(copy_run(tmp_ / "run"));
  rewrite_legacy(ck / "model.safetensors", [](SafetensorsFile& f) {
    Tensor& t = tensor_in(f, "norm.weight");
    Tensor ints = Tensor::empty(t.shape(), DType::i32);
    std::memcpy(ints.raw(), t.raw(), t.nbytes());  // the same bytes, now "I32"
    t = ints;
  });
  expect_clean_error(run_cli("generate --checkpoint " + ck.string() + " --prompt a --max-tokens 2"),
                     {"model.safetensors", "'norm.weight' is stored as I32"});
}

TEST_F(BadInput, ChecksumRemovedAndWeightByteFlipped) {
  const fs::path ck = checkpoint_of(copy_run(tmp_ / "run"));
  rewrite_legacy(ck / "model.safetensors", [](SafetensorsFile& f) {
    f.metadata.erase("checksum");
    tensor_in(f, "norm.weight").data<float>()[0] += 0.5f;
  });
  expect_clean_error(run_cli("generate --checkpoint " + ck.string() + " --prompt a --max-tokens 2"),
                     {"model.safetensors", "no checksum"});
}

// Resuming from the run whose train_state was changed by `edit` (the weights are rewritten as a
// legacy file too, so that a difftx without format versions reads the same fixture).
CliRun resume_after(const TempDir& tmp, const std::string& name,
                    const std::function<void(SafetensorsFile&)>& edit) {
  const fs::path run = copy_run(tmp / name);
  const fs::path ck = checkpoint_of(run);
  rewrite_legacy(ck / "model.safetensors", [](SafetensorsFile&) {});
  rewrite_legacy(ck / "train_state.safetensors", edit);
  json cfg = tiny_config(run, 6);
  cfg["train"]["eval_every"] = 0;
  const fs::path path = write_text(tmp / (name + ".json"), cfg.dump(2));
  return run_cli("train --quiet --resume --config " + path.string());
}

void edit_state(SafetensorsFile& f, const std::function<void(json&)>& edit) {
  json state = json::parse(f.metadata.at("state"));
  edit(state);
  f.metadata["state"] = state.dump();
}

TEST_F(BadInput, TrainStateFractionalStep) {
  expect_clean_error(
      resume_after(tmp_, "frac",
                   [](SafetensorsFile& f) { edit_state(f, [](json& s) { s["step"] = 1.5; }); }),
      {"train_state.safetensors", "field 'step' must be an integer, got 1.5"});
}

TEST_F(BadInput, TrainStateStepBeyondInt) {
  expect_clean_error(resume_after(tmp_, "big",
                                  [](SafetensorsFile& f) {
                                    edit_state(f, [](json& s) { s["step"] = 4294967299ull; });
                                  }),
                     {"field 'step' is out of range: 4294967299"});
}

TEST_F(BadInput, TrainStateStepDisagreesWithItsFolder) {
  expect_clean_error(resume_after(tmp_, "other",
                                  [](SafetensorsFile& f) {
                                    edit_state(f, [](json& s) {
                                      s["step"] = 2;
                                      s["adam_steps"] = 2;
                                    });
                                  }),
                     {"train_state.safetensors", "step 2 disagrees", "step 3"});
}

TEST_F(BadInput, TrainStateNegativeAdamSteps) {
  expect_clean_error(resume_after(tmp_, "adam",
                                  [](SafetensorsFile& f) {
                                    edit_state(f, [](json& s) { s["adam_steps"] = -4; });
                                  }),
                     {"field 'adam_steps' must be >= 0, got -4"});
}

TEST_F(BadInput, TrainStateNanOrNegativeSecondMoments) {
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), -1.0f}) {
    expect_clean_error(
        resume_after(
            tmp_, "moments",
            [bad](SafetensorsFile& f) { tensor_in(f, "v.norm.weight").data<float>()[3] = bad; }),
        {"'v.norm.weight' holds", "at index 3", "second moments are finite and never negative"});
  }
}

// ---- unclear errors ------------------------------------------------------------------------

TEST_F(BadInput, OverflowingNumberLiteral) {
  const fs::path path = config("overflow", [](json& c) { c["schedule"]["lr"] = 0; });
  std::string text = read_file_text(path);
  text.replace(text.find("\"lr\": 0"), 7, "\"lr\": 1e999999");
  write_text(path, text);
  expect_clean_error(train(path), {"overflow.json", "number 1e999999 is out of range"});
}

TEST_F(BadInput, SymlinkLoopAsConfig) {
  fs::create_symlink(tmp_ / "b.json", tmp_ / "a.json");
  fs::create_symlink(tmp_ / "a.json", tmp_ / "b.json");
  expect_clean_error(run_cli("model info --config " + (tmp_ / "a.json").string()),
                     {"a.json", "symbolic link loop"});
  expect_clean_error(train(tmp_ / "a.json"), {"symbolic link loop"});
}

TEST_F(BadInput, ProcFileAsConfig) {
  expect_clean_error(run_cli("model info --config /proc/self/mem"), {"/proc/self/mem", "/proc"});
  expect_clean_error(run_cli("train --config /proc/self/mem"), {"/proc"});
}

// ---- non-finite weights are never saved ----------------------------------------------------

TEST_F(BadInput, DivergedTrainingIsNotSaved) {
  const fs::path path = config(
      "diverge",
      [](json& c) {
        c["schedule"]["lr"] = 1e300;
        c["schedule"]["min_lr"] = 0;
        c["schedule"]["warmup_steps"] = 0;
        c["output"]["checkpoint_every"] = 0;
      },
      1);
  expect_clean_error(train(path),
                     {"refusing to save non-finite weights at step 1", "lower schedule.lr"});
  // Nothing was left behind that a later --resume could pick up.
  EXPECT_FALSE(fs::exists(tmp_ / "out_diverge" / "checkpoints" / "step_0000001"));
}

}  // namespace
}  // namespace difftx::safety
