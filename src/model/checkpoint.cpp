// Saving and loading model checkpoint folders (model.safetensors + config.json + tokenizer):
// format version, required checksum, dtype and finiteness checks on both sides.
#include "difftx/model/checkpoint.h"

#include <charconv>
#include <cmath>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"
#include "difftx/core/input_file.h"
#include "difftx/core/json_input.h"
#include "difftx/core/safetensors.h"
#include "difftx/core/tensor_checksum.h"
#include "difftx/model/memory_estimate.h"

namespace difftx {
namespace fs = std::filesystem;

namespace {

// The first non-finite value of an f32 tensor, or -1.
std::int64_t first_non_finite(const Tensor& f32) {
  const float* p = f32.data<float>();
  for (std::int64_t i = 0; i < f32.numel(); ++i) {
    if (!std::isfinite(p[i])) return i;
  }
  return -1;
}

// The value of a metadata entry that must hold a non-negative decimal integer.
std::int64_t metadata_integer(const SafetensorsFile& file, const std::string& key,
                              const std::string& source) {
  auto it = file.metadata.find(key);
  if (it == file.metadata.end()) {
    fail(
        "{}: metadata has no '{}' (difftx always writes it): the file was altered or not "
        "written by difftx; use another checkpoint",
        source, key);
  }
  const std::string& text = it->second;
  std::int64_t value = -1;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0) {
    fail("{}: metadata '{}' is '{}', expected a non-negative integer", source, key,
         text_snippet(text));
  }
  return value;
}

}  // namespace

std::int64_t checkpoint_format_version(const std::map<std::string, std::string>& metadata,
                                       const std::string& source) {
  auto it = metadata.find("format_version");
  if (it == metadata.end()) return 1;  // files written before versions existed
  const std::string& text = it->second;
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 1) {
    fail("{}: metadata 'format_version' is '{}', expected a positive integer", source,
         text_snippet(text));
  }
  if (v > kCheckpointFormatVersion) {
    fail(
        "{}: written by a newer difftx (format version {}; this one reads up to {}): update "
        "difftx",
        source, v, kCheckpointFormatVersion);
  }
  return v;
}

void verify_tensors_checksum(const SafetensorsFile& file, const std::string& source) {
  const std::int64_t version = checkpoint_format_version(file.metadata, source);
  auto sum = file.metadata.find("checksum");
  if (sum == file.metadata.end()) {
    fail(
        "{}: no checksum in the metadata; difftx writes one into every checkpoint, so the file "
        "was altered or not written by difftx: use another checkpoint",
        source);
  }
  const TensorChecksum algorithm = version == 1 ? TensorChecksum::fnv1a64 : TensorChecksum::xxh3_64;
  const std::string actual = tensors_checksum(file.tensors, algorithm);
  if (sum->second != actual) {
    fail(
        "{}: checksum mismatch (the file is corrupt: stored {}, computed {}); use an earlier "
        "checkpoint",
        source, text_snippet(sum->second), actual);
  }
}

void require_finite_tensors(const std::vector<std::pair<std::string, Tensor>>& tensors,
                            const std::string& what) {
  for (const auto& [name, t] : tensors) {
    if (t.dtype() != DType::f32 && t.dtype() != DType::f64 && t.dtype() != DType::bf16) continue;
    const Tensor host = t.device() == Device::cpu ? t : t.to(Device::cpu);
    const Tensor f32 = host.dtype() == DType::f32 ? host : host.to_dtype(DType::f32);
    const std::int64_t at = first_non_finite(f32);
    if (at >= 0) {
      fail(
          "refusing to save {}: tensor '{}' holds {} at index {}; the run diverged (lower "
          "schedule.lr or set train.nan_policy to \"skip\"), and a checkpoint of it could be "
          "neither loaded nor resumed",
          what, name, f32.data<float>()[at], at);
    }
  }
}

void save_model_checkpoint(const fs::path& dir, const nlohmann::json& run_config,
                           const ModelConfig& config, const ParamSet& params,
                           const fs::path& tokenizer, std::int64_t step) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Tensor& t = params.tensor(i);
    Tensor host = t.device() == Device::cpu ? t : t.to(Device::cpu);
    tensors.emplace_back(params.name(i),
                         host.dtype() == DType::f32 ? host : host.to_dtype(DType::f32));
  }
  // Before anything is written: a checkpoint of non-finite weights is useless.
  require_finite_tensors(tensors, fmt::format("non-finite weights at step {}", step));
  ensure_writable_directory(dir);
  nlohmann::json cfg = run_config.is_object() ? run_config : nlohmann::json::object();
  cfg["model"] = config.to_json();
  if (!tokenizer.empty()) {
    auto bytes = read_file_bytes(tokenizer, "tokenizer model");
    write_file_atomic(dir / "tokenizer.model", bytes);
  }
  write_file_atomic(dir / "config.json", cfg.dump(2) + "\n");
  // Weights last: a folder with model.safetensors is complete.
  save_safetensors(dir / "model.safetensors", tensors,
                   {{"format", "difftx"},
                    {"format_version", std::to_string(kCheckpointFormatVersion)},
                    {"step", std::to_string(step)},
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
  if (!input_exists(config_path)) fail("checkpoint '{}' has no config.json", dir.string());
  ck.run_config = read_json_file(config_path, "checkpoint config");
  if (!ck.run_config.is_object() || !ck.run_config.contains("model")) {
    fail("{}: no \"model\" object", config_path.string());
  }
  ck.config = ModelConfig::from_json(ck.run_config.at("model"), config_path.string() + " (model)");
  // The weights are read whole: refuse a model whose f32 weights alone cannot fit.
  MemoryEstimate weights_only;
  weights_only.weights = 4 * parameter_count_real(ck.config);
  require_memory(weights_only, device_capacity_bytes(Device::cpu), "to load its f32 weights",
                 "this machine", fmt::format("'{}' is too large to load here", dir.string()));
  const fs::path weights = dir / "model.safetensors";
  if (!input_exists(weights)) fail("checkpoint '{}' has no model.safetensors", dir.string());
  SafetensorsFile file = load_safetensors(weights);
  const std::string source = weights.string();
  auto format = file.metadata.find("format");
  if (format == file.metadata.end() || format->second != "difftx") {
    fail(
        "{}: metadata 'format' is {}, not \"difftx\": not a difftx checkpoint (convert Hugging "
        "Face models with `difftx import hf`)",
        source,
        format == file.metadata.end() ? "missing" : "'" + text_snippet(format->second) + "'");
  }
  verify_tensors_checksum(file, source);
  auto attention = file.metadata.find("attention");
  if (attention != file.metadata.end() &&
      attention->second != attention_kind_name(ck.config.attention)) {
    fail(
        "{}: the weights are of a {} model but config.json describes {} (is this a checkpoint of "
        "another architecture?)",
        source, text_snippet(attention->second), attention_kind_name(ck.config.attention));
  }
  for (const auto& s : parameter_specs(ck.config)) {
    if (!file.contains(s.name)) {
      fail("{}: tensor '{}' is missing (is this a checkpoint of another architecture?)", source,
           s.name);
    }
    const Tensor& t = file.at(s.name);
    if (t.shape() != s.shape) {
      fail(
          "{}: tensor '{}' has shape {}, the config needs {} (checkpoint of another architecture?)",
          source, s.name, shape_string(t.shape()), shape_string(s.shape));
    }
    for (const auto& e : file.entries) {
      if (e.name == s.name && e.dtype != "F32") {
        fail(
            "{}: tensor '{}' is stored as {}, difftx checkpoints store F32 weights: the file was "
            "altered; use another checkpoint",
            source, s.name, e.dtype);
      }
    }
    const std::int64_t at = first_non_finite(t);
    if (at >= 0) fail("{}: tensor '{}' holds a non-finite value at {}", source, s.name, at);
    ck.params.add(s.name, t);
  }
  if (file.tensors.size() != ck.params.size()) {
    for (const auto& [name, t] : file.tensors) {
      if (!ck.params.contains(name)) {
        fail(
            "{}: unexpected tensor '{}' for this config (is this a checkpoint of another "
            "architecture?)",
            source, text_snippet(name));
      }
    }
  }
  ck.step = metadata_integer(file, "step", source);
  if (input_exists(dir / "tokenizer.model")) ck.tokenizer = dir / "tokenizer.model";
  return ck;
}

}  // namespace difftx
