// Parsing and validation of run configs (model + data + optim + schedule + train + output):
// every field typed and range-checked (core/json_fields.h), and the training memory estimated.
#include "difftx/train/run_config.h"

#include <cmath>
#include <limits>
#include <set>

#include "difftx/core/error.h"
#include "difftx/core/json_fields.h"
#include "difftx/core/json_input.h"
#include "difftx/model/memory_estimate.h"

namespace difftx {
using nlohmann::json;

namespace {

constexpr int kMaxInt = std::numeric_limits<int>::max();
constexpr EnumTable<std::string_view, 2> kDevices{{{"cpu", "cpu"}, {"cuda", "cuda"}}};
constexpr EnumTable<NanPolicy, 2> kNanPolicies{
    {{NanPolicy::stop, "stop"}, {NanPolicy::skip, "skip"}}};

const json& section(const json& j, const char* key) {
  static const json empty = json::object();
  return j.contains(key) ? j.at(key) : empty;
}

// Refuses a run whose model cannot be trained in the memory of this machine (and, for CUDA, of
// the GPU where its allocator reports a size), before anything is allocated.
void require_training_memory(const RunConfig& r, const std::string& name) {
  const bool cuda = r.train.device == "cuda";
  const MemoryLayout layout{DType::f32, cuda ? DType::bf16 : DType::f32, cuda};
  const MemoryEstimate need =
      estimate_training_memory(r.model, r.data.batch_size, r.data.seq_len, layout);
  const std::string purpose =
      fmt::format("to train on batches of {} x {} tokens", r.data.batch_size, r.data.seq_len);
  const std::string advice =
      fmt::format("lower data.batch_size or data.seq_len, or make the model smaller ({})", name);
  if (cuda) {
    require_memory(need, device_capacity_bytes(Device::cuda), purpose, "the GPU", advice);
    // The host initialises the weights and stages checkpoints in f32.
    MemoryEstimate host;
    host.weights = need.gradients;
    require_memory(host, device_capacity_bytes(Device::cpu), "in host memory for its weights",
                   "this machine", advice);
  } else {
    require_memory(need, device_capacity_bytes(Device::cpu), purpose, "this machine", advice);
  }
}

}  // namespace

RunConfig RunConfig::from_json(const json& j, const std::string& name) {
  if (!j.is_object()) fail("{}: a run config must be a JSON object", name);
  for (auto it = j.begin(); it != j.end(); ++it) {
    static const std::set<std::string> known = {"model", "data",   "optim",  "schedule",
                                                "train", "output", "comment"};
    if (!known.count(it.key())) {
      fail("{}: unknown section '{}' (see docs/config.md)", name, text_snippet(it.key()));
    }
  }
  if (j.contains("comment") && !j.at("comment").is_string()) {
    fail("{}: field 'comment' must be a string, got {}", name, json_snippet(j.at("comment")));
  }
  if (!j.contains("model")) fail("{}: missing the \"model\" section", name);
  RunConfig r;
  r.model = ModelConfig::from_json(j.at("model"), name + " (model)");

  const JsonFields data(section(j, "data"), name + " (data)",
                        {"path", "seq_len", "batch_size", "seed"});
  r.data.path = data.string_or("path", r.data.path.string());
  if (r.data.path.empty()) fail("{} must not be empty", data.field("path"));
  r.data.seq_len = data.integer_or<int>("seq_len", r.data.seq_len, 1, kMaxInt);
  r.data.batch_size = data.integer_or<int>("batch_size", r.data.batch_size, 1, kMaxInt);
  r.data.seed = data.integer_or<std::uint64_t>("seed", r.data.seed);
  if (r.data.seq_len > r.model.max_seq_len) {
    fail("{} (data): field 'seq_len' ({}) exceeds the model's max_seq_len ({})", name,
         r.data.seq_len, r.model.max_seq_len);
  }
  if (std::int64_t(r.data.batch_size) * r.data.seq_len > kMaxInt) {
    fail(
        "{} (data): batch_size x seq_len = {} x {} tokens per micro-batch is out of range (at "
        "most {})",
        name, r.data.batch_size, r.data.seq_len, kMaxInt);
  }

  const JsonFields optim(
      section(j, "optim"), name + " (optim)",
      {"beta1", "beta2", "eps", "weight_decay", "decay_embeddings", "grad_clip", "grad_accum"});
  r.optim.beta1 = optim.number_or("beta1", r.optim.beta1);
  r.optim.beta2 = optim.number_or("beta2", r.optim.beta2);
  r.optim.eps = optim.number_or("eps", r.optim.eps);
  r.optim.weight_decay = optim.number_or("weight_decay", r.optim.weight_decay);
  r.optim.decay_embeddings = optim.boolean_or("decay_embeddings", r.optim.decay_embeddings);
  r.optim.grad_clip = optim.number_or("grad_clip", r.optim.grad_clip);
  r.optim.grad_accum = optim.integer_or<int>("grad_accum", r.optim.grad_accum, 1, kMaxGradAccum);
  for (auto [key, v] : {std::pair{"beta1", r.optim.beta1}, {"beta2", r.optim.beta2}}) {
    if (!(v >= 0 && v < 1)) fail("{} (optim): field '{}' must be in [0, 1), got {}", name, key, v);
  }
  optim.require_positive("eps", r.optim.eps);
  optim.require_non_negative("weight_decay", r.optim.weight_decay);
  optim.require_non_negative("grad_clip", r.optim.grad_clip);

  const JsonFields train(section(j, "train"), name + " (train)",
                         {"steps", "eval_every", "eval_batches", "log_every", "seed", "device",
                          "nan_policy", "max_skipped_steps"});
  r.train.steps = train.integer<int>("steps", 1, kMaxInt);
  r.train.eval_every = train.integer_or<int>("eval_every", r.train.eval_every, 0, kMaxInt);
  r.train.eval_batches = train.integer_or<int>("eval_batches", r.train.eval_batches, 0, kMaxInt);
  r.train.log_every = train.integer_or<int>("log_every", r.train.log_every, 1, kMaxInt);
  r.train.seed = train.integer_or<std::uint64_t>("seed", r.train.seed);
  r.train.device = std::string(train.choice_or("device", kDevices, std::string_view("cpu")));
  r.train.nan_policy = train.choice_or("nan_policy", kNanPolicies, NanPolicy::stop);
  r.train.max_skipped_steps =
      train.integer_or<int>("max_skipped_steps", r.train.max_skipped_steps, 1, kMaxInt);

  const JsonFields output(section(j, "output"), name + " (output)",
                          {"dir", "checkpoint_every", "keep_last"});
  r.output.dir = output.string_or("dir", r.output.dir.string());
  if (r.output.dir.empty()) fail("{} must not be empty", output.field("dir"));
  r.output.checkpoint_every =
      output.integer_or<int>("checkpoint_every", r.output.checkpoint_every, 0, kMaxInt);
  r.output.keep_last = output.integer_or<int>("keep_last", r.output.keep_last, 1, kMaxInt);

  // The schedule's horizon defaults to the run's length.
  json sched = j.contains("schedule") ? j.at("schedule") : json{{"lr", 1e-3}};
  if (sched.is_object() && !sched.contains("total_steps")) sched["total_steps"] = r.train.steps;
  r.schedule = schedule_from_json(sched, name + " (schedule)");

  require_training_memory(r, name);
  r.source = r.to_json();
  return r;
}

json RunConfig::to_json() const {
  const char* nan = enum_name(kNanPolicies, train.nan_policy);
  return json{{"model", model.to_json()},
              {"data",
               {{"path", data.path.string()},
                {"seq_len", data.seq_len},
                {"batch_size", data.batch_size},
                {"seed", data.seed}}},
              {"optim",
               {{"beta1", optim.beta1},
                {"beta2", optim.beta2},
                {"eps", optim.eps},
                {"weight_decay", optim.weight_decay},
                {"decay_embeddings", optim.decay_embeddings},
                {"grad_clip", optim.grad_clip},
                {"grad_accum", optim.grad_accum}}},
              {"schedule", schedule_to_json(schedule)},
              {"train",
               {{"steps", train.steps},
                {"eval_every", train.eval_every},
                {"eval_batches", train.eval_batches},
                {"log_every", train.log_every},
                {"seed", train.seed},
                {"device", train.device},
                {"nan_policy", nan},
                {"max_skipped_steps", train.max_skipped_steps}}},
              {"output",
               {{"dir", output.dir.string()},
                {"checkpoint_every", output.checkpoint_every},
                {"keep_last", output.keep_last}}}};
}

RunConfig load_run_config(const std::filesystem::path& path) {
  return RunConfig::from_json(read_json_file(path, "run config"), path.string());
}

}  // namespace difftx
