// Saving and loading model checkpoint folders (model.safetensors + config.json + tokenizer).
#include "difftx/model/checkpoint.h"

#include <cmath>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/core/safetensors.h"
#include "difftx/core/tensor_checksum.h"

namespace difftx {
namespace fs = std::filesystem;

void save_model_checkpoint(const fs::path& dir, const nlohmann::json& run_config,
                           const ModelConfig& config, const ParamSet& params,
                           const fs::path& tokenizer, std::int64_t step) {
  ensure_writable_directory(dir);
  nlohmann::json cfg = run_config.is_object() ? run_config : nlohmann::json::object();
  cfg["model"] = config.to_json();
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Tensor& t = params.tensor(i);
    Tensor host = t.device() == Device::cpu ? t : t.to(Device::cpu);
    tensors.emplace_back(params.name(i), host.dtype() == DType::f32 ? host : host.to_dtype(DType::f32));
  }
  if (!tokenizer.empty()) {
    auto bytes = read_file_bytes(tokenizer);
    write_file_atomic(dir / "tokenizer.model", bytes);
  }
  write_file_atomic(dir / "config.json", cfg.dump(2) + "\n");
  // Weights last: a folder with model.safetensors is complete.
  save_safetensors(dir / "model.safetensors", tensors,
                   {{"format", "difftx"}, {"step", std::to_string(step)},
                    {"attention", attention_kind_name(config.attention)},
                    {"checksum", tensors_checksum(tensors)}});
}

ModelCheckpoint load_model_checkpoint(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    fail("checkpoint '{}' is not a folder (expected model.safetensors and config.json inside)",
         dir.string());
  }
  ModelCheckpoint ck;
  const fs::path config_path = dir / "config.json";
  if (!fs::exists(config_path)) fail("checkpoint '{}' has no config.json", dir.string());
  try {
    ck.run_config = nlohmann::json::parse(read_file_text(config_path));
  } catch (const nlohmann::json::parse_error& e) {
    fail("{}: not valid JSON: {}", config_path.string(), e.what());
  }
  if (!ck.run_config.is_object() || !ck.run_config.contains("model")) {
    fail("{}: no \"model\" object", config_path.string());
  }
  ck.config = ModelConfig::from_json(ck.run_config.at("model"), config_path.string() + " (model)");
  const fs::path weights = dir / "model.safetensors";
  if (!fs::exists(weights)) fail("checkpoint '{}' has no model.safetensors", dir.string());
  SafetensorsFile file = load_safetensors(weights);
  auto sum = file.metadata.find("checksum");
  if (sum != file.metadata.end() && sum->second != tensors_checksum(file.tensors)) {
    fail("{}: checksum mismatch (the file is corrupt: stored {}, computed {}); use an earlier checkpoint",
         weights.string(), sum->second, tensors_checksum(file.tensors));
  }
  for (const auto& s : parameter_specs(ck.config)) {
    if (!file.contains(s.name)) {
      fail("{}: tensor '{}' is missing (is this a checkpoint of another architecture?)",
           weights.string(), s.name);
    }
    const Tensor& t = file.at(s.name);
    if (t.shape() != s.shape) {
      fail("{}: tensor '{}' has shape {}, the config needs {} (checkpoint of another architecture?)",
           weights.string(), s.name, shape_string(t.shape()), shape_string(s.shape));
    }
    Tensor f32 = t.dtype() == DType::f32 ? t : t.to_dtype(DType::f32);
    const float* p = f32.data<float>();
    for (std::int64_t i = 0; i < f32.numel(); ++i) {
      if (!std::isfinite(p[i])) fail("{}: tensor '{}' holds a non-finite value at {}", weights.string(), s.name, i);
    }
    ck.params.add(s.name, f32);
  }
  if (file.tensors.size() != ck.params.size()) {
    for (const auto& [name, t] : file.tensors) {
      if (!ck.params.contains(name)) fail("{}: unexpected tensor '{}' for this config (is this a checkpoint of another architecture?)", weights.string(), name);
    }
  }
  auto it = file.metadata.find("step");
  if (it != file.metadata.end()) {
    try {
      ck.step = std::stoll(it->second);
    } catch (const std::exception&) {
      fail("{}: metadata step '{}' is not a number", weights.string(), it->second);
    }
  }
  if (fs::exists(dir / "tokenizer.model")) ck.tokenizer = dir / "tokenizer.model";
  return ck;
}

}  // namespace difftx
