// Loading the compared checkpoints (models.h).
#include "difftx/eval/models.h"

#include <algorithm>
#include <regex>

#include "difftx/core/error.h"
#include "difftx/model/checkpoint.h"
#include "difftx/model/params.h"

namespace difftx::eval {
namespace fs = std::filesystem;

nlohmann::json EvalModel::describe() const {
  return {{"label", label},
          {"checkpoint", checkpoint.string()},
          {"attention", attention_kind_name(config.attention)},
          {"parameters", parameters},
          {"step", step},
          {"tokenizer", tokenizer.fingerprint()},
          {"max_seq_len", config.max_seq_len}};
}

fs::path resolve_checkpoint(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    fail("--checkpoint '{}' does not exist (give a checkpoint folder or a training run folder)",
         path.string());
  }
  if (!fs::is_directory(path, ec)) {
    fail("--checkpoint '{}' is a file; give the checkpoint folder that holds model.safetensors",
         path.string());
  }
  if (fs::exists(path / "model.safetensors", ec)) return path;
  if (fs::is_directory(path / "checkpoints", ec)) {
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(path / "checkpoints", ec)) {
      if (e.is_directory() &&
          std::regex_match(e.path().filename().string(), std::regex("step_\\d+")) &&
          fs::exists(e.path() / "model.safetensors") && fs::exists(e.path() / "config.json")) {
        dirs.push_back(e.path());
      }
    }
    std::sort(dirs.begin(), dirs.end());
    if (dirs.empty())
      fail("run folder '{}' has no complete checkpoint under checkpoints/", path.string());
    return dirs.back();
  }
  fail(
      "--checkpoint '{}' holds neither model.safetensors nor checkpoints/: not a checkpoint or run "
      "folder",
      path.string());
}

std::vector<EvalModel> load_eval_models(const std::vector<std::string>& paths, Backend& backend) {
  DIFFTX_CHECK(!paths.empty(), "give at least one --checkpoint");
  std::vector<EvalModel> models;
  for (const auto& p : paths) {
    EvalModel m;
    m.checkpoint = resolve_checkpoint(p);
    ModelCheckpoint ck = load_model_checkpoint(m.checkpoint);
    if (ck.tokenizer.empty()) {
      fail(
          "checkpoint '{}' has no tokenizer.model; eval needs the tokenizer the model was trained "
          "with",
          m.checkpoint.string());
    }
    m.tokenizer = data::Tokenizer::load(ck.tokenizer);
    if (m.tokenizer.vocab_size() != ck.config.vocab_size) {
      fail("checkpoint '{}': tokenizer.model has {} ids but the model's vocab_size is {}",
           m.checkpoint.string(), m.tokenizer.vocab_size(), ck.config.vocab_size);
    }
    m.config = ck.config;
    m.step = ck.step;
    if (ck.run_config.contains("data") && ck.run_config["data"].is_object() &&
        ck.run_config["data"].contains("path") && ck.run_config["data"]["path"].is_string()) {
      m.data_path = ck.run_config["data"]["path"].get<std::string>();
    }
    m.parameters = parameter_count(ck.config);
    ParamSet params;
    for (std::size_t i = 0; i < ck.params.size(); ++i) {
      Tensor t = ck.params.tensor(i).to_dtype(backend.param_dtype());
      params.add(ck.params.name(i), backend.device() == Device::cpu ? t : t.to(backend.device()));
    }
    m.model = std::make_unique<Model>(ck.config, backend, std::move(params));
    // Label: attention kind and the folder that names the run.
    fs::path name_dir = m.checkpoint;
    if (name_dir.parent_path().filename() == "checkpoints")
      name_dir = name_dir.parent_path().parent_path();
    std::string base = std::string(attention_kind_name(ck.config.attention)) + " " +
                       fs::weakly_canonical(name_dir).filename().string();
    std::string label = base;
    for (int k = 2; std::any_of(models.begin(), models.end(),
                                [&](const EvalModel& o) { return o.label == label; });
         ++k) {
      label = base + " #" + std::to_string(k);
    }
    m.label = label;
    models.push_back(std::move(m));
  }
  return models;
}

}  // namespace difftx::eval
