// Checkpoint and training-state integrity at the API level: format version, required checksum
// (XXH3 now, legacy FNV-1a files still read), dtypes, refusal to save non-finite values, the
// training state checked against its checkpoint; and the memory estimate that refuses models
// which cannot fit.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "difftx/core/safetensors.h"
#include "difftx/core/tensor_checksum.h"
#include "difftx/hf/hf_weights.h"
#include "difftx/model/checkpoint.h"
#include "difftx/model/memory_estimate.h"
#include "difftx/model/model.h"
#include "difftx/runtime/backend_factory.h"
#include "difftx/train/optimizer.h"
#include "difftx/train/run_config.h"
#include "difftx/train/train_state.h"
#include "safety_test_util.h"

namespace difftx::safety {
namespace {

ModelConfig small_config() {
  return ModelConfig::from_json(json{{"vocab_size", 64},
                                     {"d_model", 16},
                                     {"n_layers", 2},
                                     {"attention", "diff_v1"},
                                     {"n_heads", 2},
                                     {"n_kv_heads", 1},
                                     {"max_seq_len", 8}},
                                "test");
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

void expect_parts(const std::string& message, const std::vector<std::string>& parts) {
  for (const auto& p : parts)
    EXPECT_NE(message.find(p), std::string::npos) << "'" << p << "' not in: " << message;
}

class CheckpointIntegrity : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = small_config();
    params_ = ParamSet::initialised(config_, 7, DType::f32, Device::cpu);
    ck_ = tmp_ / "ck";
    save_model_checkpoint(ck_, json{{"model", config_.to_json()}}, config_, params_, {}, 5);
  }
  fs::path weights() const { return ck_ / "model.safetensors"; }
  void rewrite(const std::function<void(SafetensorsFile&)>& edit) {
    SafetensorsFile f = load_safetensors(weights());
    edit(f);
    save_safetensors(weights(), f.tensors, f.metadata);
  }
  TempDir tmp_;
  ModelConfig config_;
  ParamSet params_;
  fs::path ck_;
};

TEST_F(CheckpointIntegrity, WritesVersionAndXxh3ChecksumAndReadsThemBack) {
  const SafetensorsHeader h = read_safetensors_header(weights());
  EXPECT_EQ(h.metadata.at("format"), "difftx");
  EXPECT_EQ(h.metadata.at("format_version"), "2");
  EXPECT_EQ(h.metadata.at("step"), "5");
  const SafetensorsFile f = load_safetensors(weights());
  EXPECT_EQ(h.metadata.at("checksum"), tensors_checksum(f.tensors, TensorChecksum::xxh3_64));
  EXPECT_NE(tensors_checksum(f.tensors, TensorChecksum::xxh3_64),
            tensors_checksum(f.tensors, TensorChecksum::fnv1a64));
  const ModelCheckpoint ck = load_model_checkpoint(ck_);
  EXPECT_EQ(ck.step, 5);
  EXPECT_EQ(ck.params.size(), params_.size());
  EXPECT_EQ(ck.params.at("norm.weight").to_float_vector(),
            params_.at("norm.weight").to_float_vector());
}

TEST_F(CheckpointIntegrity, LegacyFilesWithFnvChecksumsStayReadable) {
  rewrite_legacy(weights(), [](SafetensorsFile&) {});
  EXPECT_EQ(read_safetensors_header(weights()).metadata.count("format_version"), 0u);
  EXPECT_EQ(load_model_checkpoint(ck_).step, 5);
  // ... and a flipped value in a legacy file is still caught by its FNV checksum.
  SafetensorsFile f = load_safetensors(weights());
  tensor_in(f, "norm.weight").data<float>()[1] = 3.0f;
  save_safetensors(weights(), f.tensors, f.metadata);
  expect_parts(error_of([&] { load_model_checkpoint(ck_); }), {"checksum mismatch"});
}

TEST_F(CheckpointIntegrity, ChecksumIsRequired) {
  rewrite([](SafetensorsFile& f) { f.metadata.erase("checksum"); });
  expect_parts(error_of([&] { load_model_checkpoint(ck_); }),
               {"model.safetensors", "no checksum in the metadata"});
}

TEST_F(CheckpointIntegrity, FormatAndVersionAreChecked) {
  rewrite([](SafetensorsFile& f) { f.metadata["format_version"] = "3"; });
  expect_parts(error_of([&] { load_model_checkpoint(ck_); }), {"newer difftx (format version 3"});
  rewrite([](SafetensorsFile& f) { f.metadata["format_version"] = "two"; });
  expect_parts(error_of([&] { load_model_checkpoint(ck_); }), {"'format_version' is 'two'"});
  rewrite([](SafetensorsFile& f) { f.metadata["format"] = "pt"; });
  expect_parts(error_of([&] { load_model_checkpoint(ck_); }), {"not a difftx checkpoint"});
}

TEST_F(CheckpointIntegrity, StepAndAttentionMetadataAreChecked) {
  rewrite([](SafetensorsFile& f) { f.metadata["step"] = "1.5"; });
  expect_parts(error_of([&] { load_model_checkpoint(ck_); }), {"metadata 'step' is '1.5'"});
  SetUp();
  rewrite([](SafetensorsFile& f) { f.metadata["attention"] = "softmax"; });
  expect_parts(error_of([&] { load_model_checkpoint(ck_); }),
               {"weights are of a softmax model", "diff_v1", "another architecture"});
}

TEST_F(CheckpointIntegrity, WeightsMustBeStoredAsF32) {
  rewrite([](SafetensorsFile& f) {
    tensor_in(f, "norm.weight") = tensor_in(f, "norm.weight").to_dtype(DType::f64);
    f.metadata["checksum"] = tensors_checksum(f.tensors);
  });
  expect_parts(error_of([&] { load_model_checkpoint(ck_); }), {"'norm.weight' is stored as F64"});
}

TEST_F(CheckpointIntegrity, AConfigTooLargeToLoadIsRefusedBeforeReadingTheWeights) {
  json cfg = json::parse(read_file_text(ck_ / "config.json"));
  cfg["model"] = {{"vocab_size", 64},       {"d_model", 8192}, {"n_layers", 1000},
                  {"attention", "softmax"}, {"n_heads", 64},   {"max_seq_len", 8}};
  write_text(ck_ / "config.json", cfg.dump());
  expect_parts(error_of([&] { load_model_checkpoint(ck_); }),
               {"this model needs", "GiB to load its f32 weights", "but this machine has"});
}

TEST_F(CheckpointIntegrity, NonFiniteWeightsAreNeverSaved) {
  ParamSet bad = ParamSet::initialised(config_, 7, DType::f32, Device::cpu);
  bad.at("layers.1.ffn.w_up.weight").data<float>()[9] = std::numeric_limits<float>::infinity();
  const fs::path dir = tmp_ / "never";
  expect_parts(error_of([&] { save_model_checkpoint(dir, json::object(), config_, bad, {}, 12); }),
               {"refusing to save non-finite weights at step 12", "'layers.1.ffn.w_up.weight'",
                "inf at index 9"});
  EXPECT_FALSE(fs::exists(dir));  // nothing written, not even the folder
}

class TrainStateIntegrity : public CheckpointIntegrity {
 protected:
  void SetUp() override {
    CheckpointIntegrity::SetUp();
    backend_ = make_backend("cpu");
    model_ = std::make_unique<Model>(config_, *backend_,
                                     ParamSet::initialised(config_, 7, DType::f32, Device::cpu));
    optimizer_ = std::make_unique<AdamW>(*model_, OptimSettings{});
    for (std::size_t i = 0; i < optimizer_->second_moments().size(); ++i) {
      backend_->fill(optimizer_->first_moments().tensor(i), 0.25);
      backend_->fill(optimizer_->second_moments().tensor(i), 0.5);
    }
    optimizer_->set_steps_taken(5);
    meta_.step = 5;
    meta_.loader = json{{"seed", 1}};
    state_ = ck_ / "train_state.safetensors";
    save_train_state(state_, *optimizer_, meta_);
  }
  AdamW fresh() { return AdamW(*model_, OptimSettings{}); }
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<AdamW> optimizer_;
  TrainStateMeta meta_;
  fs::path state_;
};

TEST_F(TrainStateIntegrity, RoundTrip) {
  AdamW opt = fresh();
  const TrainStateMeta meta = load_train_state(state_, opt);
  EXPECT_EQ(meta.step, 5);
  EXPECT_EQ(opt.steps_taken(), 5);
  EXPECT_EQ(opt.second_moments().tensor(0).to_float_vector()[0], 0.5f);
  EXPECT_EQ(read_safetensors_header(state_).metadata.at("format_version"), "2");
}

TEST_F(TrainStateIntegrity, StepMustAgreeWithTheCheckpointFolder) {
  meta_.step = 4;
  optimizer_->set_steps_taken(4);
  save_train_state(state_, *optimizer_, meta_);
  AdamW opt = fresh();
  expect_parts(error_of([&] { load_train_state(state_, opt); }),
               {"step 4 disagrees with the checkpoint's weights", "step 5"});
  // A step_NNNNNNN folder name is checked too.
  const fs::path named = tmp_ / "step_0000009";
  fs::create_directories(named);
  meta_.step = 5;
  optimizer_->set_steps_taken(5);
  save_train_state(named / "train_state.safetensors", *optimizer_, meta_);
  expect_parts(error_of([&] { load_train_state(named / "train_state.safetensors", opt); }),
               {"step 5 disagrees with its folder 'step_0000009'"});
}

TEST_F(TrainStateIntegrity, AdamStepsCannotExceedTheStep) {
  optimizer_->set_steps_taken(6);
  save_train_state(state_, *optimizer_, meta_);
  AdamW opt = fresh();
  expect_parts(error_of([&] { load_train_state(state_, opt); }),
               {"field 'adam_steps' is out of range: 6 (at most 5)"});
  EXPECT_EQ(opt.steps_taken(), 0);  // untouched
}

TEST_F(TrainStateIntegrity, MomentsAreCheckedAndNeverSavedNonFinite) {
  backend_->fill(optimizer_->first_moments().tensor(2), std::nan(""));
  expect_parts(error_of([&] { save_train_state(state_, *optimizer_, meta_); }),
               {"refusing to save non-finite optimizer moments at step 5", "nan at index 0"});
  SafetensorsFile f = load_safetensors(state_);
  f.tensors.emplace_back("m.extra", Tensor::zeros({2}, DType::f32));
  f.metadata["checksum"] = tensors_checksum(f.tensors);
  save_safetensors(state_, f.tensors, f.metadata);
  AdamW opt = fresh();
  expect_parts(error_of([&] { load_train_state(state_, opt); }), {"unexpected tensor 'm.extra'"});
  f.tensors.pop_back();
  f.metadata["checksum"] = "0000000000000000";
  save_safetensors(state_, f.tensors, f.metadata);
  expect_parts(error_of([&] { load_train_state(state_, opt); }), {"checksum mismatch"});
  f.metadata.erase("checksum");
  save_safetensors(state_, f.tensors, f.metadata);
  expect_parts(error_of([&] { load_train_state(state_, opt); }), {"no checksum"});
}

TEST(TrainStateMeta, ParsesOnlyWellFormedStates) {
  const std::string good =
      R"({"step": 7, "loader": {}, "init_seed": 18446744073709551615, "skipped_in_a_row": 1, "adam_steps": 6})";
  const TrainStateRecord r = parse_train_state_meta(good, "s");
  EXPECT_EQ(r.meta.step, 7);
  EXPECT_EQ(r.meta.init_seed, 18446744073709551615ull);
  EXPECT_EQ(r.adam_steps, 6);
  expect_parts(error_of([] { parse_train_state_meta(R"({"step": 1.5})", "s"); }),
               {"'step' must be an integer"});
  expect_parts(error_of([] { parse_train_state_meta(R"({"step": 1, "extra": 2})", "s"); }),
               {"unknown field 'extra'"});
  expect_parts(
      error_of([] {
        parse_train_state_meta(
            R"({"step": 1, "loader": 3, "init_seed": 1, "skipped_in_a_row": 0, "adam_steps": 0})",
            "s");
      }),
      {"'loader' must be an object"});
}

TEST(MemoryEstimate, CountsTheModelAndRefusesWhatCannotFit) {
  const ModelConfig c = small_config();
  const MemoryEstimate m = estimate_training_memory(c, 4, 8, MemoryLayout{});
  const double params = double(parameter_count(c));
  EXPECT_DOUBLE_EQ(m.weights, 4 * params);
  EXPECT_DOUBLE_EQ(m.gradients, 4 * params);
  EXPECT_DOUBLE_EQ(m.optimizer, 8 * params);
  EXPECT_GT(m.activations, 4.0 * 8 * 4 * c.vocab_size);  // at least the logits
  const MemoryEstimate bf16 = estimate_training_memory(c, 4, 8, {DType::f32, DType::bf16, true});
  EXPECT_DOUBLE_EQ(bf16.weights, 6 * params);
  EXPECT_DOUBLE_EQ(bf16.activations, m.activations / 2);
  EXPECT_NO_THROW(require_memory(m, 0, "to train", "the GPU", "advice"));  // unknown capacity
  EXPECT_NO_THROW(require_memory(m, std::uint64_t(m.total()) + 1, "to train", "x", "advice"));
  expect_parts(error_of([&] {
                 require_memory(m, 1000, "to train on batches of 4 x 8 tokens", "this machine",
                                "lower it");
               }),
               {"this model needs 0.00 GiB to train on batches of 4 x 8 tokens (weights",
                "but this machine has", "lower it"});
  EXPECT_GT(device_capacity_bytes(Device::cpu), 0u);
}

TEST(MemoryEstimate, ValidateRefusesAbsurdModelsBeforeAnythingIsAllocated) {
  json j = small_config().to_json();
  j["n_layers"] = 2147483647;
  expect_parts(error_of([&] { ModelConfig::from_json(j, "cfg"); }),
               {"cfg: this model needs", "GiB for its f32 weights alone", "n_layers (2147483647)"});
  j = small_config().to_json();
  j["n_layers"] = 70000;
  j["d_model"] = 4;
  j["n_heads"] = 1;
  j["n_kv_heads"] = 1;
  j["head_dim"] = 2;
  j["ffn_dim"] = 1;
  j["vocab_size"] = 1;
  expect_parts(error_of([&] { ModelConfig::from_json(j, "cfg"); }),
               {"'n_layers' is out of range: 70000 (at most 65536)"});
  j = small_config().to_json();
  j["max_seq_len"] = 1 << 25;
  expect_parts(error_of([&] { ModelConfig::from_json(j, "cfg"); }),
               {"'max_seq_len' is out of range"});
  j = small_config().to_json();
  j["d_model"] = 1 << 30;
  j["n_heads"] = 1 << 28;
  j["n_kv_heads"] = 1;
  j["head_dim"] = 2;
  j.erase("ffn_dim");  // the default (8/3 d_model) is beyond int: clamped, then refused by size
  expect_parts(error_of([&] { ModelConfig::from_json(j, "cfg"); }), {"this model needs"});
}

TEST(MemoryEstimate, RunConfigsThatCannotFitAreRefused) {
  json cfg = tiny_config(fs::temp_directory_path() / "unused", 2);
  cfg["data"]["batch_size"] = 1 << 26;
  expect_parts(error_of([&] { RunConfig::from_json(cfg, "run.json"); }),
               {"this model needs", "to train on batches of 67108864 x 16 tokens",
                "this machine has", "lower data.batch_size or data.seq_len", "(run.json)"});
  cfg["data"]["batch_size"] = 1 << 28;
  expect_parts(error_of([&] { RunConfig::from_json(cfg, "run.json"); }),
               {"batch_size x seq_len = 268435456 x 16 tokens per micro-batch is out of range"});
}

TEST(RunConfigFields, EveryLevelIsTyped) {
  json cfg = tiny_config(fs::temp_directory_path() / "unused", 2);
  cfg["comment"] = 3;
  expect_parts(error_of([&] { RunConfig::from_json(cfg, "run.json"); }),
               {"run.json: field 'comment' must be a string"});
  cfg["comment"] = "fine";
  cfg["data"]["path"] = "";
  expect_parts(error_of([&] { RunConfig::from_json(cfg, "run.json"); }),
               {"run.json (data): field 'path' must not be empty"});
  cfg = tiny_config(fs::temp_directory_path() / "unused", 2);
  cfg["train"]["device"] = "tpu";
  expect_parts(error_of([&] { RunConfig::from_json(cfg, "run.json"); }),
               {"(train): field 'device' must be \"cpu\" or \"cuda\", got \"tpu\""});
  cfg = tiny_config(fs::temp_directory_path() / "unused", 2);
  cfg["data"]["seed"] = -1;
  expect_parts(error_of([&] { RunConfig::from_json(cfg, "run.json"); }),
               {"(data): field 'seed' must be >= 0, got -1"});
  cfg["data"]["seed"] = 18446744073709551615ull;
  EXPECT_EQ(RunConfig::from_json(cfg, "run.json").data.seed, 18446744073709551615ull);
}

TEST(HfIndex, StructureIsChecked) {
  EXPECT_EQ(
      hf::parse_hf_index(R"({"weight_map": {"a": "x.safetensors", "b": "x.safetensors"}})", "i")
          .size(),
      1u);
  expect_parts(error_of([] { hf::parse_hf_index(R"({"weight_map": []})", "i"); }),
               {"no \"weight_map\" object"});
  expect_parts(error_of([] { hf::parse_hf_index(R"({"weight_map": {}})", "i"); }),
               {"weight_map is empty"});
  expect_parts(error_of([] { hf::parse_hf_index(R"({"weight_map": {"a": "../x"}})", "i"); }),
               {"not a file name inside the folder"});
  expect_parts(error_of([] { hf::parse_hf_index(R"({"weight_map": {"a": 3}})", "i"); }),
               {"must be a file name"});
  expect_parts(
      error_of([] { hf::parse_hf_index(R"({"weight_map": {"a": "x"}, "metadata": 3})", "i"); }),
      {"\"metadata\" must be an object"});
  expect_parts(error_of([] { hf::parse_hf_index(R"({"weight_map": {"a": "x", "a": "y"}})", "i"); }),
               {"'a' appears twice"});
}

}  // namespace
}  // namespace difftx::safety
