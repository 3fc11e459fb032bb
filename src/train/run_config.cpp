// Parsing and validation of run configs (model + data + optim + schedule + train + output).
#include "difftx/train/run_config.h"

#include <cmath>
#include <set>

#include "difftx/core/atomic_file.h"
#include "difftx/core/error.h"

namespace difftx {
using nlohmann::json;

namespace {

// Reads fields of one JSON object section, rejecting unknown keys and wrong types.
class Section {
 public:
  Section(const json& j, std::string where, std::set<std::string> known) : j_(j), where_(std::move(where)) {
    if (!j_.is_object()) fail("{} must be a JSON object", where_);
    known.insert("comment");
    for (auto it = j_.begin(); it != j_.end(); ++it) {
      if (!known.count(it.key())) fail("{}: unknown field '{}' (see docs/config.md)", where_, it.key());
    }
  }
  template <typename T>
  void get(const char* key, T& out) const {
    if (!j_.contains(key)) return;
    const json& v = j_.at(key);
    if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) bad(key, "true or false", v);
      out = v.get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
      if (!v.is_number_integer()) bad(key, "an integer", v);
      out = v.get<T>();
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!v.is_number()) bad(key, "a number", v);
      out = v.get<T>();
    } else {
      if (!v.is_string()) bad(key, "a string", v);
      out = v.get<std::string>();
    }
  }
  void positive(const char* key, double value) const {
    if (!(value > 0)) fail("{}: field '{}' must be positive, got {}", where_, key, value);
  }
  void non_negative(const char* key, double value) const {
    if (!(value >= 0)) fail("{}: field '{}' must be >= 0, got {}", where_, key, value);
  }
  const std::string& where() const { return where_; }

 private:
  [[noreturn]] void bad(const char* key, const char* expected, const json& v) const {
    fail("{}: field '{}' must be {}, got {} ({})", where_, key, expected, v.dump(), v.type_name());
  }
  const json& j_;
  std::string where_;
};

const json& section(const json& j, const char* key) {
  static const json empty = json::object();
  return j.contains(key) ? j.at(key) : empty;
}

}  // namespace

RunConfig RunConfig::from_json(const json& j, const std::string& name) {
  if (!j.is_object()) fail("{}: a run config must be a JSON object", name);
  for (auto it = j.begin(); it != j.end(); ++it) {
    static const std::set<std::string> known = {"model", "data", "optim", "schedule", "train", "output", "comment"};
    if (!known.count(it.key())) fail("{}: unknown section '{}' (see docs/config.md)", name, it.key());
  }
  if (!j.contains("model")) fail("{}: missing the \"model\" section", name);
  RunConfig r;
  r.model = ModelConfig::from_json(j.at("model"), name + " (model)");

  Section data(section(j, "data"), name + " (data)", {"path", "seq_len", "batch_size", "seed"});
  std::string path = r.data.path.string();
  data.get("path", path);
  r.data.path = path;
  data.get("seq_len", r.data.seq_len);
  data.get("batch_size", r.data.batch_size);
  data.get("seed", r.data.seed);
  data.positive("seq_len", r.data.seq_len);
  data.positive("batch_size", r.data.batch_size);
  if (r.data.seq_len > r.model.max_seq_len) {
    fail("{} (data): field 'seq_len' ({}) exceeds the model's max_seq_len ({})", name, r.data.seq_len,
         r.model.max_seq_len);
  }

  Section optim(section(j, "optim"), name + " (optim)",
                {"beta1", "beta2", "eps", "weight_decay", "decay_embeddings", "grad_clip", "grad_accum"});
  optim.get("beta1", r.optim.beta1);
  optim.get("beta2", r.optim.beta2);
  optim.get("eps", r.optim.eps);
  optim.get("weight_decay", r.optim.weight_decay);
  optim.get("decay_embeddings", r.optim.decay_embeddings);
  optim.get("grad_clip", r.optim.grad_clip);
  optim.get("grad_accum", r.optim.grad_accum);
  for (auto [key, v] : {std::pair{"beta1", r.optim.beta1}, {"beta2", r.optim.beta2}}) {
    if (!(v >= 0 && v < 1)) fail("{} (optim): field '{}' must be in [0, 1), got {}", name, key, v);
  }
  optim.positive("eps", r.optim.eps);
  optim.non_negative("weight_decay", r.optim.weight_decay);
  optim.non_negative("grad_clip", r.optim.grad_clip);
  optim.positive("grad_accum", r.optim.grad_accum);

  Section train(section(j, "train"), name + " (train)",
                {"steps", "eval_every", "eval_batches", "log_every", "seed", "device", "nan_policy",
                 "max_skipped_steps"});
  train.get("steps", r.train.steps);
  train.get("eval_every", r.train.eval_every);
  train.get("eval_batches", r.train.eval_batches);
  train.get("log_every", r.train.log_every);
  train.get("seed", r.train.seed);
  train.get("device", r.train.device);
  std::string nan = "stop";
  train.get("nan_policy", nan);
  train.get("max_skipped_steps", r.train.max_skipped_steps);
  train.positive("steps", r.train.steps);
  train.non_negative("eval_every", r.train.eval_every);
  train.non_negative("eval_batches", r.train.eval_batches);
  train.positive("log_every", r.train.log_every);
  train.positive("max_skipped_steps", r.train.max_skipped_steps);
  if (r.train.device != "cpu" && r.train.device != "cuda") {
    fail("{} (train): field 'device' must be \"cpu\" or \"cuda\", got \"{}\"", name, r.train.device);
  }
  if (nan == "stop") r.train.nan_policy = NanPolicy::stop;
  else if (nan == "skip") r.train.nan_policy = NanPolicy::skip;
  else fail("{} (train): field 'nan_policy' must be \"stop\" or \"skip\", got \"{}\"", name, nan);

  Section output(section(j, "output"), name + " (output)", {"dir", "checkpoint_every", "keep_last"});
  std::string dir = r.output.dir.string();
  output.get("dir", dir);
  r.output.dir = dir;
  output.get("checkpoint_every", r.output.checkpoint_every);
  output.get("keep_last", r.output.keep_last);
  output.non_negative("checkpoint_every", r.output.checkpoint_every);
  output.positive("keep_last", r.output.keep_last);

  // The schedule's horizon defaults to the run's length.
  json sched = j.contains("schedule") ? j.at("schedule") : json{{"lr", 1e-3}};
  if (sched.is_object() && !sched.contains("total_steps")) sched["total_steps"] = r.train.steps;
  r.schedule = schedule_from_json(sched, name + " (schedule)");

  r.source = r.to_json();
  return r;
}

json RunConfig::to_json() const {
  const char* nan = train.nan_policy == NanPolicy::stop ? "stop" : "skip";
  return json{
      {"model", model.to_json()},
      {"data", {{"path", data.path.string()}, {"seq_len", data.seq_len}, {"batch_size", data.batch_size}, {"seed", data.seed}}},
      {"optim", {{"beta1", optim.beta1}, {"beta2", optim.beta2}, {"eps", optim.eps}, {"weight_decay", optim.weight_decay},
                 {"decay_embeddings", optim.decay_embeddings}, {"grad_clip", optim.grad_clip}, {"grad_accum", optim.grad_accum}}},
      {"schedule", schedule_to_json(schedule)},
      {"train", {{"steps", train.steps}, {"eval_every", train.eval_every}, {"eval_batches", train.eval_batches},
                 {"log_every", train.log_every}, {"seed", train.seed}, {"device", train.device}, {"nan_policy", nan},
                 {"max_skipped_steps", train.max_skipped_steps}}},
      {"output", {{"dir", output.dir.string()}, {"checkpoint_every", output.checkpoint_every}, {"keep_last", output.keep_last}}}};
}

RunConfig load_run_config(const std::filesystem::path& path) {
  json j;
  try {
    j = json::parse(read_file_text(path));
  } catch (const json::parse_error& e) {
    fail("{}: not valid JSON: {}", path.string(), e.what());
  }
  return RunConfig::from_json(j, path.string());
}

}  // namespace difftx
