// Loading single-file and sharded Hugging Face safetensors weights into f32 tensors.
#include "difftx/hf/hf_weights.h"

#include <nlohmann/json.hpp>
#include <set>

#include "difftx/core/error.h"
#include "difftx/core/input_file.h"
#include "difftx/core/json_input.h"
#include "difftx/core/safetensors.h"

namespace difftx::hf {
namespace fs = std::filesystem;

namespace {

constexpr const char* kSingle = "model.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";

// Adds every tensor of one safetensors file to `w` (as f32); `expected` (may be null) is the
// set of tensors the index places in this file.
void add_file(HfWeights& w, const fs::path& path, const std::set<std::string>* expected) {
  SafetensorsFile file = load_safetensors(path);
  if (w.files.empty()) w.metadata = file.metadata;
  w.files.push_back(path.string());
  for (auto& [name, t] : file.tensors) {
    if (t.dtype() == DType::i32) {
      fail("{}: tensor '{}' holds integers: model weights must be BF16, F16, F32 or F64",
           path.string(), name);
    }
    auto it = w.set.origin.find(name);
    if (it != w.set.origin.end()) {
      fail("{}: tensor '{}' is stored twice (also in {})", path.string(), name, it->second);
    }
    w.set.tensors.emplace(name, t.dtype() == DType::f32 ? t : t.to_dtype(DType::f32));
    w.set.origin.emplace(name, path.string());
  }
  if (expected) {
    for (const std::string& name : *expected) {
      if (!file.contains(name)) {
        fail("{}: {} places tensor '{}' in this shard, but the shard has no such tensor",
             path.string(), kIndex, name);
      }
    }
  }
}

std::string no_weights_message(const fs::path& dir) {
  std::vector<std::string> bins;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (e.path().extension() == ".bin" || e.path().extension() == ".pt" ||
        e.path().extension() == ".pth") {
      bins.push_back(n);
    }
  }
  if (!bins.empty()) {
    return fmt::format(
        "'{}' holds PyTorch pickle weights ({}) but no {}: difftx reads safetensors "
        "only; convert with transformers: AutoModelForCausalLM.from_pretrained(dir)"
        ".save_pretrained(out, safe_serialization=True)",
        dir.string(), bins.front(), kSingle);
  }
  return fmt::format(
      "'{}' has neither {} nor {}: not a Hugging Face model folder with "
      "safetensors weights",
      dir.string(), kSingle, kIndex);
}

}  // namespace

HfShardIndex parse_hf_index(std::string_view text, const std::string& source) {
  const nlohmann::json index = parse_json(text, source);
  if (!index.is_object() || !index.contains("weight_map") || !index.at("weight_map").is_object()) {
    fail("{}: no \"weight_map\" object (tensor name -> shard file)", source);
  }
  if (index.contains("metadata") && !index.at("metadata").is_object() &&
      !index.at("metadata").is_null()) {
    fail("{}: \"metadata\" must be an object, got {}", source, json_snippet(index.at("metadata")));
  }
  HfShardIndex by_shard;
  for (auto it = index.at("weight_map").begin(); it != index.at("weight_map").end(); ++it) {
    if (!it.value().is_string()) {
      fail("{}: weight_map entry '{}' must be a file name, got {}", source, text_snippet(it.key()),
           json_snippet(it.value()));
    }
    const std::string shard = it.value().get<std::string>();
    const fs::path rel(shard);
    if (shard.empty() || rel.is_absolute() || shard.find("..") != std::string::npos ||
        shard.find('\0') != std::string::npos) {
      fail("{}: weight_map entry '{}' names shard '{}', which is not a file name inside the folder",
           source, text_snippet(it.key()), text_snippet(shard));
    }
    by_shard[shard].insert(it.key());
  }
  if (by_shard.empty()) fail("{}: weight_map is empty", source);
  return by_shard;
}

HfWeights load_hf_weights(const fs::path& dir) {
  HfWeights w;
  w.set.where = dir.string();
  const fs::path index_path = dir / kIndex;
  if (!input_exists(index_path)) {
    if (!input_exists(dir / kSingle)) fail("{}", no_weights_message(dir));
    add_file(w, dir / kSingle, nullptr);
    return w;
  }
  const HfShardIndex by_shard = parse_hf_index(
      read_file_text(index_path, "safetensors index", kMaxJsonFileBytes), index_path.string());
  for (const auto& [shard, names] : by_shard) {
    const fs::path path = dir / shard;
    if (!input_exists(path)) {
      fail("{}: shard '{}' (holding '{}' and {} more tensors) does not exist", index_path.string(),
           shard, *names.begin(), names.size() - 1);
    }
    add_file(w, path, &names);
  }
  return w;
}

}  // namespace difftx::hf
