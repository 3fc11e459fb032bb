// Saving and restoring the optimizer moments and loop position (train_state.safetensors).
#include "difftx/train/train_state.h"

#include "difftx/core/error.h"
#include "difftx/core/safetensors.h"
#include "difftx/core/tensor_checksum.h"

namespace difftx {

void save_train_state(const std::filesystem::path& file, AdamW& opt, const TrainStateMeta& meta) {
  save_train_state(file, opt.first_moments(), opt.second_moments(), opt.steps_taken(), meta);
}

void save_train_state(const std::filesystem::path& file, const ParamSet& m, const ParamSet& v,
                      int adam_steps, const TrainStateMeta& meta) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (std::size_t i = 0; i < m.size(); ++i) {
    tensors.emplace_back("m." + m.name(i), m.tensor(i));
    tensors.emplace_back("v." + v.name(i), v.tensor(i));
  }
  nlohmann::json state = {{"step", meta.step},
                          {"loader", meta.loader},
                          {"init_seed", meta.init_seed},
                          {"skipped_in_a_row", meta.skipped_in_a_row},
                          {"adam_steps", adam_steps}};
  save_safetensors(file, tensors,
                   {{"format", "difftx-train-state"}, {"state", state.dump()},
                    {"checksum", tensors_checksum(tensors)}});
}

TrainStateMeta load_train_state(const std::filesystem::path& file, AdamW& opt) {
  int adam_steps = 0;
  TrainStateMeta meta =
      load_train_state(file, opt.first_moments(), opt.second_moments(), adam_steps);
  opt.set_steps_taken(adam_steps);
  return meta;
}

TrainStateMeta load_train_state(const std::filesystem::path& file, ParamSet& m, ParamSet& v,
                                int& adam_steps) {
  SafetensorsFile f = load_safetensors(file);
  auto sum = f.metadata.find("checksum");
  if (sum == f.metadata.end() || sum->second != tensors_checksum(f.tensors)) {
    fail("{}: checksum mismatch or missing (the training state is corrupt)", file.string());
  }
  auto it = f.metadata.find("state");
  if (it == f.metadata.end()) fail("{}: no training state metadata (not a difftx train state)", file.string());
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(it->second);
    TrainStateMeta meta;
    meta.step = state.at("step").get<int>();
    meta.loader = state.at("loader");
    meta.init_seed = state.at("init_seed").get<std::uint64_t>();
    meta.skipped_in_a_row = state.at("skipped_in_a_row").get<int>();
    adam_steps = state.at("adam_steps").get<int>();
    for (auto* set : {&m, &v}) {
      const char* prefix = set == &m ? "m." : "v.";
      for (std::size_t i = 0; i < set->size(); ++i) {
        const std::string name = prefix + set->name(i);
        if (!f.contains(name)) fail("{}: tensor '{}' is missing", file.string(), name);
        const Tensor& t = f.at(name);
        Tensor& dst = set->tensor(i);
        if (t.shape() != dst.shape()) {
          fail("{}: tensor '{}' has shape {}, expected {}", file.string(), name, shape_string(t.shape()),
               shape_string(dst.shape()));
        }
        Tensor typed = t.dtype() == dst.dtype() ? t : t.to_dtype(dst.dtype());
        dst.copy_from(typed);
      }
    }
    return meta;
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed training state: {}", file.string(), e.what());
  }
}

}  // namespace difftx
